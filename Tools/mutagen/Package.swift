// swift-tools-version:5.9
// The mutation-site finder behind `make mutate` (Tools/mutate.py --generate). A package of its own so
// that neither the engine nor `make test` builds swift-syntax.
import PackageDescription

let package = Package(
    name: "mutagen",
    dependencies: [.package(url: "https://github.com/swiftlang/swift-syntax", exact: "603.0.1")],
    targets: [
        .executableTarget(name: "mutagen", dependencies: [
            .product(name: "SwiftSyntax", package: "swift-syntax"),
            .product(name: "SwiftParser", package: "swift-syntax"),
            .product(name: "SwiftOperators", package: "swift-syntax"),
        ]),
    ]
)
