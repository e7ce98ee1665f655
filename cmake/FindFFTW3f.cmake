# FindFFTW3f: FFTW 3, single precision, and its parallel companion.
#
# FFTW ships no CMake config on Debian and its pkg-config file names only -lfftw3f, so the library
# and its OpenMP (or, failing that, POSIX threads) companion are looked up by hand. Installed beside
# aetcoreConfig.cmake, so that a consumer of aetcore finds FFTW the same way aetcore did.
#
# Imported targets:
#   FFTW3f::fftw3f    the single-precision library (with the fftw3.h include directory)
#   FFTW3f::parallel  fftw3f_omp when found, otherwise fftw3f_threads (links FFTW3f::fftw3f)
# Variables:
#   FFTW3f_FOUND, FFTW3f_INCLUDE_DIR, FFTW3f_LIBRARY, FFTW3f_PARALLEL_LIBRARY,
#   FFTW3f_USES_OPENMP (1 when the parallel library is fftw3f_omp, 0 for fftw3f_threads)
# Hints: FFTW3f_ROOT or CMAKE_PREFIX_PATH.

find_path(FFTW3f_INCLUDE_DIR fftw3.h)
find_library(FFTW3f_LIBRARY NAMES fftw3f)
find_library(FFTW3f_OMP_LIBRARY NAMES fftw3f_omp)
find_library(FFTW3f_THREADS_LIBRARY NAMES fftw3f_threads)
if(FFTW3f_OMP_LIBRARY)
  set(FFTW3f_PARALLEL_LIBRARY ${FFTW3f_OMP_LIBRARY})
  set(FFTW3f_USES_OPENMP 1)
else()
  set(FFTW3f_PARALLEL_LIBRARY ${FFTW3f_THREADS_LIBRARY})
  set(FFTW3f_USES_OPENMP 0)
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(FFTW3f
  REQUIRED_VARS FFTW3f_LIBRARY FFTW3f_PARALLEL_LIBRARY FFTW3f_INCLUDE_DIR)
mark_as_advanced(FFTW3f_INCLUDE_DIR FFTW3f_LIBRARY FFTW3f_OMP_LIBRARY FFTW3f_THREADS_LIBRARY)

if(FFTW3f_FOUND)
  if(NOT TARGET FFTW3f::fftw3f)
    add_library(FFTW3f::fftw3f UNKNOWN IMPORTED)
    set_target_properties(FFTW3f::fftw3f PROPERTIES
      IMPORTED_LOCATION "${FFTW3f_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${FFTW3f_INCLUDE_DIR}")
  endif()
  if(NOT TARGET FFTW3f::parallel)
    add_library(FFTW3f::parallel UNKNOWN IMPORTED)
    set_target_properties(FFTW3f::parallel PROPERTIES
      IMPORTED_LOCATION "${FFTW3f_PARALLEL_LIBRARY}"
      INTERFACE_LINK_LIBRARIES FFTW3f::fftw3f)
    if(NOT FFTW3f_USES_OPENMP)
      find_package(Threads)
      if(Threads_FOUND)
        set_property(TARGET FFTW3f::parallel APPEND PROPERTY INTERFACE_LINK_LIBRARIES Threads::Threads)
      endif()
    endif()
  endif()
endif()
