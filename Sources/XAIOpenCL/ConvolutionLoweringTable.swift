import Foundation
import XAICore

/// The faster convolution lowering per layer, forward and backward, in fp32 and under each
/// tensor-core arithmetic, as `xai-bench tune` measured it (``ConvolutionLoweringTuner``) on one
/// device, driver, kernel source and GEMM configuration; kept in `conv-lowering.json` in the tuning
/// cache folder (``GEMMTuningCache/folder(environment:)``). Both lowerings give the same bits in
/// every arithmetic, so the table changes speed only. A layer the table does not name takes
/// ``ConvolutionLowering/defaultChoice(for:backward:)`` (fp32) or
/// ``ConvolutionLowering/tensorCoreDefault(for:backward:)``.
public struct ConvolutionLoweringTable: Codable, Sendable, Equatable {
    /// The faster lowering of a layer's forward and of its input gradient.
    public struct Directions: Codable, Sendable, Equatable {
        public var forward: ConvolutionLowering
        public var backward: ConvolutionLowering
        public init(forward: ConvolutionLowering, backward: ConvolutionLowering) {
            self.forward = forward
            self.backward = backward
        }
        func lowering(backward isBackward: Bool) -> ConvolutionLowering { isBackward ? backward : forward }
    }

    public struct Choice: Codable, Sendable, Equatable {
        /// On the fp32 kernels (`conv_tiled_*` or `conv_rows_*` against im2col on the GEMM engine).
        public var forward: ConvolutionLowering
        public var backward: ConvolutionLowering
        /// Whether Winograd (its faster tile) beat the faster exact forward (forward-only passes
        /// under `--fast`); `nil` where the layer cannot take it.
        public var winograd: Bool?
        /// Winograd's faster tile; `nil` in tables from before F(4x4, 3x3), which timed F(2x2, 3x3).
        public var winogradTile: WinogradTile?
        /// On the tensor cores (`conv_mma_*` against im2col on `gemm_mma`), by arithmetic and path
        /// (``TensorCores/tableName``: `tf32`, `3xtf32`, `tf32 emulated`, ...): three TF32 products
        /// per operand pair move the balance between the gather and the column buffer, so each is
        /// timed. `nil` or missing where the tuner did not time it (no tensor cores, or a table
        /// from before).
        public var tensorCores: [String: Directions]?
        public init(forward: ConvolutionLowering, backward: ConvolutionLowering, winograd: Bool? = nil, winogradTile: WinogradTile? = nil,
                    tensorCores: [String: Directions]? = nil) {
            self.forward = forward
            self.backward = backward
            self.winograd = winograd
            self.winogradTile = winogradTile
            self.tensorCores = tensorCores
        }

        /// The measured lowering on `tensorCores`, or `nil` where none was timed.
        func tensorCoreLowering(_ tensorCores: TensorCores, backward: Bool) -> ConvolutionLowering? {
            self.tensorCores?[tensorCores.tableName]?.lowering(backward: backward)
        }
    }

    public var key: String
    public var measured: String
    /// By ``XAICore/ConvPlan/layer``.
    public var choices: [String: Choice]

    public init(key: String, measured: String, choices: [String: Choice]) {
        self.key = key
        self.measured = measured
        self.choices = choices
    }

    /// What a measurement holds for: the device, driver and gemm.cl (``GEMMTuningCache/key(for:)``),
    /// the GEMM configuration the kernels were built with, conv.cl (Winograd's kernels) and mma.cl
    /// (the tensor cores'), so a table timed on other kernels is not read.
    public static func key(for info: OpenCLDeviceInfo, gemm: GEMMConfig) -> String {
        "\(GEMMTuningCache.key(for: info)) | \(gemm) | conv.cl \(GEMMTuningCache.sourceHash("conv")) | mma.cl \(GEMMTuningCache.sourceHash("mma"))"
    }

    /// How many layers carry a measurement on `tensorCores`.
    func tensorCoreLayers(_ tensorCores: TensorCores) -> Int {
        choices.values.filter { $0.tensorCores?[tensorCores.tableName] != nil }.count
    }

    public static func file(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        GEMMTuningCache.folder(environment: environment).appendingPathComponent("conv-lowering.json")
    }

    /// The table for `key`, or `nil`: none stored, `XAI_GEMM_TUNING=off`, or a file that is not a
    /// list of tables (the tuner rewrites it).
    static func load(key: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> ConvolutionLoweringTable? {
        guard environment["XAI_GEMM_TUNING"] != "off" else { return nil }
        return tables(in: file(environment: environment)).last { $0.key == key }
    }

    /// Every table of a cache file; a missing or malformed file reads as none.
    static func tables(in url: URL) -> [ConvolutionLoweringTable] {
        (try? Data(contentsOf: url)).flatMap { try? JSONDecoder().decode([ConvolutionLoweringTable].self, from: $0) } ?? []
    }

    /// Stores the table, replacing one with the same key.
    public func store(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let url = Self.file(environment: environment)
        var all = Self.tables(in: url).filter { $0.key != key }
        all.append(self)
        try GEMMTuningCache.write(all, to: url, what: "convolution lowering cache")
    }
}
