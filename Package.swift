// swift-tools-version:6.0
// xai: explanations for image classifiers on OpenCL GPUs and OpenBLAS CPUs.
//
// Dependencies point one way (see ../shared/STYLE.md):
//   XAICore <- XAICPU / XAIOpenCL (backends) <- XAI (facade) <- xai / xai-bench
import PackageDescription

let kernelFiles = [
    "common.cl", "gemm.cl", "conv.cl", "pool.cl", "elementwise.cl", "reduce.cl", "softmax.cl", "resize.cl", "mask.cl",
]

let package = Package(
    name: "xai",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "XAI", targets: ["XAI"]),
        .executable(name: "xai", targets: ["XAICLI"]),
        .executable(name: "xai-bench", targets: ["XAIBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
    ],
    targets: [
        // System libraries, found through pkg-config.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "COpenCL", path: "Sources/COpenCL", pkgConfig: "OpenCL",
                       providers: [.apt(["ocl-icd-opencl-dev", "opencl-headers"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng16",
                       providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG", pkgConfig: "libturbojpeg",
                       providers: [.apt(["libturbojpeg0-dev"])]),

        // Tensors, shapes, devices, the Backend contract, errors and the float64 reference backend.
        .target(name: "XAICore"),
        // OpenCL C sources, embedded in the binary so a copied executable needs no resource folder.
        .target(name: "XAIKernels", path: "Kernels",
                resources: kernelFiles.map { .embedInCode($0) }),
        .target(name: "XAICPU", dependencies: ["XAICore", "CBLAS"]),
        // Graph IR, shape logic, forward/backward executor, load-time rewrites, model zoo.
        .target(name: "XAIGraph", dependencies: ["XAICore"]),
        // ONNX import (swift-protobuf; the generated code is committed under Generated/).
        .target(name: "XAIONNX", dependencies: ["XAIGraph", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        // Attribution methods: gradients, paths, the CAM family.
        .target(name: "XAIMethods", dependencies: ["XAIGraph"]),
        .target(name: "XAIOpenCL", dependencies: ["XAICore", "XAIKernels", "COpenCL"]),
        // Pictures in and out: PNG (libpng), JPEG (TurboJPEG), resizing, preprocessing, heatmaps.
        .target(name: "XAIImage", dependencies: ["XAICore", "CPNG", "CTurboJPEG"]),
        // The one module frontends import.
        .target(name: "XAI", dependencies: ["XAICore", "XAICPU", "XAIOpenCL", "XAIGraph", "XAIONNX", "XAIMethods", "XAIImage"]),
        .executableTarget(name: "XAICLI", dependencies: [
            "XAI", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "XAIBench", dependencies: [
            "XAI", "CBLAS", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "XAITestSupport", dependencies: ["XAI"], path: "Tests/XAITestSupport"),
        .testTarget(name: "XAICoreTests", dependencies: ["XAICore"]),
        .testTarget(name: "XAIBackendTests", dependencies: ["XAI", "XAITestSupport", "XAIKernels"]),
        .testTarget(name: "XAIModelTests", dependencies: ["XAI", "XAITestSupport"]),
        .testTarget(name: "XAIMethodTests", dependencies: ["XAI", "XAITestSupport"]),
        .testTarget(name: "XAICLITests", dependencies: ["XAI", "XAITestSupport"]),
    ]
)
