# ctest script (cmake -P): install the aetcore build at AETCORE_BUILD_DIR into a prefix under WORK_DIR,
# then configure, build and run the consume project against it with find_package(aetcore) only.
# Variables: AETCORE_BUILD_DIR, CONSUME_SOURCE_DIR, WORK_DIR, CONFIG, CXX_COMPILER, GENERATOR.
set(prefix ${WORK_DIR}/prefix)
set(build ${WORK_DIR}/build)
file(REMOVE_RECURSE ${prefix} ${build})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}")
  endif()
endfunction()

set(config_args)
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()
run(${CMAKE_COMMAND} --install ${AETCORE_BUILD_DIR} --prefix ${prefix} --component development ${config_args})
foreach(f include/aetcore/projector.hpp include/aetcore/fftw_lock.hpp)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
file(GLOB_RECURSE config_file ${prefix}/*/aetcoreConfig.cmake)
if(NOT config_file)
  message(FATAL_ERROR "aetcoreConfig.cmake not installed under ${prefix}")
endif()
# The consume project sees the prefix only (not the aetcore source or build tree).
run(${CMAKE_COMMAND} -S ${CONSUME_SOURCE_DIR} -B ${build} -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${build} ${config_args})
find_program(consume_exe consume PATHS ${build} ${build}/${CONFIG} NO_DEFAULT_PATH REQUIRED)
run(${consume_exe})
