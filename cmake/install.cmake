# `cmake --install`: headers, libonnxtrain.so and libonnxtrain.a, the onnxtrain CLI, a CMake
# package (onnxtrainConfig.cmake: targets onnxtrain::onnxtrain = shared,
# onnxtrain::onnxtrain_static) and onnxtrain.pc.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(ONNXTRAIN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/onnxtrain)

install(DIRECTORY include/onnxtrain ${CMAKE_CURRENT_BINARY_DIR}/include/onnxtrain
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
# Two export sets: the static library's link interface names its dependencies' targets,
# which the config file finds (find_dependency) only when the static target is asked for.
install(TARGETS onnxtrain_shared EXPORT onnxtrainTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT Development)
install(TARGETS onnxtrain_static EXPORT onnxtrainStaticTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS onnxtrain RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT onnxtrainTargets NAMESPACE onnxtrain:: DESTINATION ${ONNXTRAIN_CMAKE_DIR})
install(EXPORT onnxtrainStaticTargets NAMESPACE onnxtrain:: DESTINATION ${ONNXTRAIN_CMAKE_DIR})

configure_package_config_file(cmake/onnxtrainConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/onnxtrainConfig.cmake
                              INSTALL_DESTINATION ${ONNXTRAIN_CMAKE_DIR})
# 0.x: a minor version may break the API, so only the same major.minor (and a patch >= the
# one asked for) is accepted.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/onnxtrainConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/onnxtrainConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/onnxtrainConfigVersion.cmake
        DESTINATION ${ONNXTRAIN_CMAKE_DIR})

file(RELATIVE_PATH ONNXTRAIN_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
configure_file(cmake/onnxtrain.pc.in ${CMAKE_CURRENT_BINARY_DIR}/onnxtrain.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/onnxtrain.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
