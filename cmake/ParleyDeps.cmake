# Third-party dependencies, all from Debian packages.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(Boost 1.74 REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
# simdjson 3.0: the webhook body's JSON scan (domain/json_fast_parse.hpp says why).
find_package(simdjson 3.0 REQUIRED)
pkg_check_modules(PQXX REQUIRED IMPORTED_TARGET libpqxx)
# libpq itself: the raw-event journal speaks COPY's binary protocol, which libpqxx 6.4 does not.
pkg_check_modules(PQ REQUIRED IMPORTED_TARGET libpq)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)

# The server's allocator. jemalloc (Debian libjemalloc-dev) instead of glibc's malloc: under
# webhook load parley spent ~19 % of its CPU in glibc's malloc/free (many small JSON nodes and
# strings freed on other threads); with jemalloc, 10-15 % less CPU per webhook, and a conversation
# actor is smaller (size classes without per-chunk headers), and passivated actors' memory goes
# back to the system without malloc_trim. Sanitizer builds keep the sanitizer's allocator.
add_library(parley_allocator INTERFACE)
if(NOT PARLEY_SANITIZE)
  pkg_check_modules(JEMALLOC REQUIRED IMPORTED_TARGET jemalloc)
  target_link_libraries(parley_allocator INTERFACE PkgConfig::JEMALLOC)
endif()

# CAF 0.17.6 ships neither a CMake config nor a .pc file: wrap it in IMPORTED targets.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
find_library(CAF_IO_LIBRARY caf_io REQUIRED)
find_library(CAF_OPENSSL_LIBRARY caf_openssl REQUIRED)
if(NOT TARGET CAF::core)
  add_library(CAF::core SHARED IMPORTED)
  set_target_properties(CAF::core PROPERTIES IMPORTED_LOCATION "${CAF_CORE_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}" INTERFACE_LINK_LIBRARIES Threads::Threads)
  add_library(CAF::io SHARED IMPORTED)
  set_target_properties(CAF::io PROPERTIES IMPORTED_LOCATION "${CAF_IO_LIBRARY}"
    INTERFACE_LINK_LIBRARIES CAF::core)
  add_library(CAF::openssl SHARED IMPORTED)
  set_target_properties(CAF::openssl PROPERTIES IMPORTED_LOCATION "${CAF_OPENSSL_LIBRARY}"
    INTERFACE_LINK_LIBRARIES "CAF::io;OpenSSL::SSL")
endif()
