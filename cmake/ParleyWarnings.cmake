# Warnings are errors on our code only; third-party headers are included as SYSTEM.
add_library(parley_warnings INTERFACE)
target_compile_options(parley_warnings INTERFACE -Wall -Wextra -Werror)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # Boost 1.74 + g++ 12 emit these from headers we do not own.
  target_compile_options(parley_warnings INTERFACE -Wno-maybe-uninitialized)
endif()
if(PARLEY_SANITIZE)
  target_compile_options(parley_warnings INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
                                                   -fno-sanitize-recover=undefined)
  target_link_options(parley_warnings INTERFACE -fsanitize=address,undefined)
endif()

# parley_module(NAME SOURCES... DEPS ... PCH ...): one library target per folder.
function(parley_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS;PCH" ${ARGN})
  add_library(${name} STATIC ${M_SOURCES})
  target_include_directories(${name} PUBLIC "${PROJECT_SOURCE_DIR}")
  target_link_libraries(${name} PUBLIC ${M_DEPS} PRIVATE parley_warnings)
  if(PARLEY_PCH AND M_PCH)
    target_precompile_headers(${name} PRIVATE ${M_PCH})
  endif()
endfunction()
