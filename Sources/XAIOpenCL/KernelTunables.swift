import Foundation
import XAICore

/// How an OpenCL backend multiplies matrices (every convolution is a GEMM): which engine, and for
/// our own `gemm_tiled` kernel the tile shape. One value decides both the kernel's `-D` options
/// and its launch geometry, and is what `xai-bench tune` searches and caches per device.
public struct GEMMConfig: Codable, Hashable, Sendable, CustomStringConvertible {
    public enum Engine: String, Codable, Sendable, CaseIterable {
        /// `gemm_tiled`: local-memory tiles, for GPUs.
        case tiled
        /// `gemm_rows` / `gemm_dot`: barrier-free register blocks, for CPU devices such as PoCL.
        case rows
        /// CLBlast's `SgemmStridedBatched` (its own per-device tuned kernels), then our
        /// bias + activation epilogue as a second kernel.
        case clblast
    }

    public var engine: Engine
    /// `gemm_tiled`: a work-group computes a `tile x tile` block of C.
    public var tile: Int
    /// `gemm_tiled`: each work-item computes a `workPerThread x workPerThread` register block.
    public var workPerThread: Int
    /// `gemm_tiled`: the K slice held in local memory per step.
    public var kSlice: Int
    /// `gemm_tiled`: elements per global load along each operand's contiguous axis (1, 2 or 4).
    public var vectorWidth: Int
    /// `gemm_tiled`: two local buffers, the next slice loading while the current one multiplies.
    public var doubleBuffer: Bool
    /// `gemm_tiled`: 1, or 4 for a register block made of 4 x 4 sub-blocks: a work-item's rows (and
    /// columns) come in runs of 4 spaced a quarter tile apart, so each reads its operands from local
    /// memory as aligned float4s instead of one float at a time (the SGEMM layout of issue 32).
    public var subBlock: Int
    /// `gemm_tiled` and the tiled convolutions: the next K slice read into registers while the
    /// current one multiplies, then stored to local memory (the same bits either way).
    public var prefetch: Bool

    public init(engine: Engine = .tiled, tile: Int = 64, workPerThread: Int = 4, kSlice: Int = 16,
                vectorWidth: Int = 1, doubleBuffer: Bool = false, subBlock: Int = 1, prefetch: Bool = false) {
        self.engine = engine
        self.tile = tile
        self.workPerThread = workPerThread
        self.kSlice = kSlice
        self.vectorWidth = vectorWidth
        self.doubleBuffer = doubleBuffer
        self.subBlock = subBlock
        self.prefetch = prefetch
    }

    private enum CodingKeys: String, CodingKey { case engine, tile, workPerThread, kSlice, vectorWidth, doubleBuffer, subBlock, prefetch }

    /// Reads entries cached before sub-blocks or prefetch existed as `subBlock` 1, no prefetch.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(engine: try c.decode(Engine.self, forKey: .engine), tile: try c.decode(Int.self, forKey: .tile),
                  workPerThread: try c.decode(Int.self, forKey: .workPerThread), kSlice: try c.decode(Int.self, forKey: .kSlice),
                  vectorWidth: try c.decode(Int.self, forKey: .vectorWidth), doubleBuffer: try c.decode(Bool.self, forKey: .doubleBuffer),
                  subBlock: try c.decodeIfPresent(Int.self, forKey: .subBlock) ?? 1,
                  prefetch: try c.decodeIfPresent(Bool.self, forKey: .prefetch) ?? false)
    }

    /// The kernel shipped before tuning existed, and the starting point of every GPU search.
    public static let baseline = GEMMConfig()
    public static let rows = GEMMConfig(engine: .rows)
    public static let clblast = GEMMConfig(engine: .clblast)

    /// Work-items per side of a `gemm_tiled` work-group.
    public var workGroupSide: Int { tile / max(workPerThread, 1) }

    /// Floats per row of a local tile: padded by one against bank conflicts, or by 4 with
    /// sub-blocks so that the float4 reads stay aligned.
    public var tileStride: Int { tile + (subBlock > 1 ? subBlock : 1) }

    /// Local memory of one `gemm_tiled` work-group in bytes (both operands' tiles, padded rows).
    public var localMemoryBytes: Int { (doubleBuffer ? 2 : 1) * 2 * kSlice * tileStride * 4 }

    /// `rows`, `clblast`, or `tiled/ts64/wpt4/tk16/vw1` with `/db` when double-buffered, `/pf` when prefetching, and `/sb4`
    /// with sub-blocks: the form
    /// ``init(parsing:)``, `XAI_GEMM_KERNEL` and `xai-bench tune --candidates` read.
    public var description: String {
        switch engine {
        case .rows: return "rows"
        case .clblast: return "clblast"
        case .tiled: return "tiled/ts\(tile)/wpt\(workPerThread)/tk\(kSlice)/vw\(vectorWidth)\(doubleBuffer ? "/db" : "")\(subBlock > 1 ? "/sb\(subBlock)" : "")\(prefetch ? "/pf" : "")"
        }
    }

    /// Reads ``description``'s form; tokens left out of a `tiled` description keep the baseline's
    /// values (`tiled` alone is the baseline).
    public init(parsing text: String) throws {
        let parts = text.lowercased().split(separator: "/").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let first = parts.first, let engine = Engine(rawValue: first) else {
            throw XAIError.invalidArgument(parameter: "gemm", value: text, reason: "must start with tiled, rows or clblast")
        }
        self = .baseline
        self.engine = engine
        guard engine == .tiled || parts.count == 1 else {
            throw XAIError.invalidArgument(parameter: "gemm", value: text, reason: "only tiled takes a tile shape")
        }
        for token in parts.dropFirst() {
            func number(_ prefix: String) -> Int? { token.hasPrefix(prefix) ? Int(token.dropFirst(prefix.count)) : nil }
            if token == "db" { doubleBuffer = true }
            else if token == "pf" { prefetch = true }
            else if let v = number("wpt") { workPerThread = v }
            else if let v = number("ts") { tile = v }
            else if let v = number("tk") { kSlice = v }
            else if let v = number("vw") { vectorWidth = v }
            else if let v = number("sb") { subBlock = v }
            else {
                throw XAIError.invalidArgument(parameter: "gemm", value: text,
                                               reason: "unknown token '\(token)' (expected ts<N>, wpt<N>, tk<N>, vw<N>, sb<N>, db or pf)")
            }
        }
    }

    /// Why this configuration cannot run on a device, or `nil` when it can: the kernel's shape
    /// rules (tile divisible by the work per thread and the vector width, K slice by the vector
    /// width) and the device's work-group and local-memory limits.
    public func problem(maxWorkGroupSize: Int, localMemoryBytes available: Int) -> String? {
        guard engine == .tiled else { return nil }
        guard [1, 2, 4].contains(vectorWidth) else { return "vector width \(vectorWidth) is not 1, 2 or 4" }
        guard tile > 0, workPerThread > 0, kSlice > 0, tile % workPerThread == 0 else {
            return "tile \(tile) is not a positive multiple of the work per thread \(workPerThread)"
        }
        guard tile % vectorWidth == 0, kSlice % vectorWidth == 0 else {
            return "tile \(tile) and K slice \(kSlice) must be multiples of the vector width \(vectorWidth)"
        }
        guard workPerThread <= 16, tile <= 256, kSlice <= 64 else { return "register block or tile too large" }
        guard [1, 4].contains(subBlock), workPerThread % subBlock == 0 else {
            return "sub-block \(subBlock) is not 1, or 4 dividing the work per thread \(workPerThread)"
        }
        let group = workGroupSide * workGroupSide
        guard group <= maxWorkGroupSize else { return "\(group) work-items per group exceed the device's \(maxWorkGroupSize)" }
        guard localMemoryBytes <= available else {
            return "\(localMemoryBytes) bytes of local memory exceed the device's \(available)"
        }
        return nil
    }

    /// This configuration, then smaller tiles for grids too small to fill a device
    /// (``TileChoice``): the tile and the register block halved together, so the
    /// work-group keeps its shape, sub-blocks dropped where the block is no longer a multiple of
    /// theirs, down to one output per work-item or 16 x 16 tiles. Every step computes each
    /// element as the same chain of fmas in k order, so all give the same bits. Only `tiled`
    /// shrinks; the others are their own ladder.
    public var shrinking: [GEMMConfig] {
        var ladder = [self]
        guard engine == .tiled else { return ladder }
        var c = self
        while c.workPerThread % 2 == 0 && c.tile % 2 == 0 && c.tile / 2 >= 16 {
            c.tile /= 2
            c.workPerThread /= 2
            if c.workPerThread % c.subBlock != 0 { c.subBlock = 1 }
            while c.tile % c.vectorWidth != 0 { c.vectorWidth /= 2 }
            ladder.append(c)
        }
        return ladder
    }

    /// Every `gemm_tiled` configuration the tuner may try on a device, the baseline first, then
    /// the rest in a fixed order (larger register blocks first: they do more work per load).
    public static func tiledSearchSpace(maxWorkGroupSize: Int, localMemoryBytes: Int) -> [GEMMConfig] {
        var space: [GEMMConfig] = [baseline]
        for wpt in [8, 4, 2] {
            for tile in [128, 64, 32] {
                for k in [16, 8, 32] {
                    for vw in [4, 2, 1] {
                        for db in [true, false] {
                            // Sub-blocks first where the register block allows them.
                            for sb in [4, 1] {
                                // Register prefetch first: the layout issue 32 asks for.
                                for pf in [true, false] {
                                    let c = GEMMConfig(tile: tile, workPerThread: wpt, kSlice: k, vectorWidth: vw, doubleBuffer: db, subBlock: sb,
                                                       prefetch: pf)
                                    if c != baseline, c.problem(maxWorkGroupSize: maxWorkGroupSize, localMemoryBytes: localMemoryBytes) == nil {
                                        space.append(c)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return space
    }
}

/// How an OpenCL backend turns a convolution that is neither depthwise nor pointwise into work for
/// its GEMM engine. Both lowerings add every output's products in the same order, so they give the
/// same bits: the choice is speed alone.
public enum ConvolutionLowering: String, Codable, Sendable, CaseIterable {
    /// Unfold a chunk of images into a column buffer (`conv2d_im2col`), then GEMMs on it; backward,
    /// GEMMs into a column buffer, then `conv2d_col2im`.
    case im2col
    /// The GEMM reads the input where it needs it (`conv_rows_*`, `conv_tiled_*`): no column
    /// buffer and one launch, the batch and the groups in one grid. CLBlast's engine keeps im2col.
    case implicit

    /// How a backend opened on `info` with `gemm` lowers convolutions, as `xai devices` prints it.
    public static func summary(for info: OpenCLDeviceInfo, gemm: GEMMConfig,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        let (policy, source) = try ConvolutionLoweringPolicy.choose(requested: nil, tableKey: ConvolutionLoweringTable.key(for: info, gemm: gemm),
                                                                    environment: environment)
        return policy.summary(gemm: gemm, source: source)
    }

    /// The lowering of a layer no table names, from `xai-bench tune --lowering-only` on PoCL
    /// (AMD EPYC, ResNet-50's layers at 1 and 4 images; Benchmarks/RESULTS.md): implicit where a
    /// tap reads whole runs of neighbouring pixels, i.e. unit stride and rows wide enough to fill
    /// the kernel's 16-wide vectors (output width 28 or more forward; input width 56 or more
    /// backward, where each tap also pays for its own pass over the output channels), else im2col.
    /// Strided layers gather their taps one pixel at a time, and backward most taps of an input
    /// pixel are zeros; im2col's GEMM does neither. GPUs have no measurement yet: the tuner's table
    /// decides there.
    public static func defaultChoice(for plan: ConvPlan, backward: Bool) -> ConvolutionLowering {
        guard plan.params.strideH == 1 && plan.params.strideW == 1 else { return .im2col }
        return backward ? (plan.width >= 56 ? .implicit : .im2col) : (plan.outputWidth >= 28 ? .implicit : .im2col)
    }

    /// The lowering of a layer under tensor cores where none was asked for and the tuner's table
    /// has no measurement under that arithmetic, by counting products (not yet timed on a GPU): implicit (`conv_mma_*`) forward, and backward at unit stride with
    /// at least 16 input channels per group; else im2col. At tensor-core rates, writing and reading
    /// a 3x3 layer's column buffer (9 times its input) should cost more than gathering the taps
    /// (CUTLASS's tensor-core convolutions are implicit GEMMs too). But the implicit input gradient
    /// multiplies, for each tap, over every input pixel, and a stride-s tap reaches one in s^2 of
    /// them (4 times the products at stride 2); and its GEMM's rows are the input channels, so
    /// fewer than 16 fill less than one instruction tile. The 7x7 stride-2 stem's input gradient
    /// (3 channels) took over 150 times the products of its im2col GEMM (147 rows) on a 128-row
    /// tile. `xai-bench tune` prints each layer's measurement beside this choice.
    public static func tensorCoreDefault(for plan: ConvPlan, backward: Bool) -> ConvolutionLowering {
        guard backward else { return .implicit }
        let p = plan.params
        return p.strideH == 1 && p.strideW == 1 && plan.input[1] / max(p.groups, 1) >= 16 ? .implicit : .im2col
    }
}


/// Winograd's output tile on OpenCL, for forward-only passes of 3x3 stride-1 layers under
/// `--fast`: F(2x2, 3x3) multiplies 2.25 times less than a direct convolution, F(4x4, 3x3) 4 times
/// less, at the price of larger transforms, more rounding and up to 3 rows and columns of padding
/// tiles.
public enum WinogradTile: Int, Codable, Sendable, CaseIterable, CustomStringConvertible {
    case f2 = 2
    case f4 = 4

    /// Side of the transformed tile: the products per channel pair are its square.
    var transformedSide: Int { rawValue + 2 }
    /// conv.cl's kernels: `<prefix>_weights`, `<prefix>_input`, `<prefix>_output`.
    var kernelPrefix: String { self == .f2 ? "winograd" : "winograd4" }
    public var description: String { "F(\(rawValue)x\(rawValue), 3x3)" }

    /// The tile `XAI_WINOGRAD_TILE=2|4` asks for every layer, or `nil` when unset.
    static func requested(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> WinogradTile? {
        guard let text = environment["XAI_WINOGRAD_TILE"], !text.isEmpty else { return nil }
        guard let side = Int(text), let tile = WinogradTile(rawValue: side) else {
            throw XAIError.invalidArgument(parameter: "XAI_WINOGRAD_TILE", value: text, reason: "must be 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3))")
        }
        return tile
    }

    /// The tile of a layer no table names: F(4x4, 3x3) where its tiles take fewer products than
    /// F(2x2, 3x3)'s, counting the padding tiles (every output side but 1, 2, 5 and 6), else
    /// F(2x2, 3x3), whose transforms cost less at the same products. On PoCL (AMD EPYC,
    /// `xai-bench tune --lowering-only`) F(4x4, 3x3) was 1.0-2.0 times as fast as F(2x2, 3x3) on
    /// ResNet-50's 56-, 28-, 14- and 7-wide layers at 32 images (6 % slower on the 7-wide ones at 4).
    public static func defaultChoice(for plan: ConvPlan) -> WinogradTile {
        let (height, width) = (plan.output[2], plan.output[3])
        func products(_ tile: WinogradTile) -> Int {
            let m = tile.rawValue
            return tile.transformedSide * tile.transformedSide * ((height + m - 1) / m) * ((width + m - 1) / m)
        }
        return products(.f4) < products(.f2) ? .f4 : .f2
    }
}

/// How a backend picks a convolution's lowering: one for every layer (the backend's `convolution:`
/// argument or `XAI_CONV_LOWERING`), or per layer (the tuner's table for this device and GEMM
/// configuration where it names the layer, else ``ConvolutionLowering/defaultChoice(for:backward:)``).
enum ConvolutionLoweringPolicy: Sendable {
    case fixed(ConvolutionLowering)
    case perLayer(ConvolutionLoweringTable?)

    var isFixed: Bool {
        if case .fixed = self { return true }
        return false
    }

    static func choose(requested: ConvolutionLowering?, tableKey: String,
                       environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (ConvolutionLoweringPolicy, String) {
        if let requested { return (.fixed(requested), "requested") }
        if let text = environment["XAI_CONV_LOWERING"], !text.isEmpty {
            guard let value = ConvolutionLowering(rawValue: text.lowercased()) else {
                throw XAIError.invalidArgument(parameter: "XAI_CONV_LOWERING", value: text, reason: "must be im2col or implicit")
            }
            return (.fixed(value), "XAI_CONV_LOWERING=\(text)")
        }
        if let table = ConvolutionLoweringTable.load(key: tableKey, environment: environment) {
            return (.perLayer(table), "per layer: \(table.choices.count) layers tuned \(table.measured) (\(ConvolutionLoweringTable.file(environment: environment).path)), others by default")
        }
        return (.perLayer(nil), "per layer by default: implicit at unit stride on wide rows, else im2col; `xai-bench tune` measures")
    }

    /// What a backend on `gemm` does with this policy, and why: for `xai devices` and the
    /// benchmarks' headers.
    func summary(gemm: GEMMConfig, source: String) -> String {
        if gemm.engine == .clblast { return "im2col GEMM (CLBlast's engine)" }
        switch self {
        case .fixed(let lowering): return "\(lowering.rawValue) GEMM (\(source))"
        case .perLayer: return "implicit or im2col GEMM per layer (\(source))"
        }
    }

    /// The Winograd tile a forward-only pass of a layer Winograd applies to takes under `--fast`,
    /// or `nil` for the exact lowering: the table's measurement where it names the layer (a table
    /// from before F(4x4, 3x3) timed F(2x2, 3x3) alone), else ``WinogradTile/defaultChoice(for:)``.
    func winograd(for plan: ConvPlan) -> WinogradTile? {
        if case .perLayer(let table?) = self, let choice = table.choices[plan.layer], let faster = choice.winograd {
            return faster ? choice.winogradTile ?? .f2 : nil
        }
        return WinogradTile.defaultChoice(for: plan)
    }

    /// A convolution's lowering on `tensorCores`: a fixed one where it was asked for, else the
    /// table's measurement under that arithmetic and path where it names the layer, else
    /// ``ConvolutionLowering/tensorCoreDefault(for:backward:)``. The table's fp32 choice says
    /// nothing here: it timed other kernels.
    func tensorCoreLowering(for plan: ConvPlan, backward: Bool, tensorCores: TensorCores) -> ConvolutionLowering {
        switch self {
        case .fixed(let lowering): return lowering
        case .perLayer(let table):
            return table?.choices[plan.layer]?.tensorCoreLowering(tensorCores, backward: backward)
                ?? ConvolutionLowering.tensorCoreDefault(for: plan, backward: backward)
        }
    }

    /// What a backend whose GEMMs run on `tensorCores` does with this policy, and why.
    func tensorCoreSummary(_ tensorCores: TensorCores, source: String) -> String {
        let byDefault = "implicit GEMM on the tensor cores, im2col GEMM for input gradients of strided layers and of layers with under"
            + " 16 input channels per group"
        switch self {
        case .fixed(let lowering): return "\(lowering.rawValue) GEMM on the tensor cores (\(source))"
        case .perLayer(let table):
            let tuned = table?.tensorCoreLayers(tensorCores) ?? 0
            guard let table, tuned > 0 else {
                return byDefault + " (default under tensor cores; `xai-bench tune` measures; XAI_CONV_LOWERING=implicit|im2col for one everywhere)"
            }
            return "implicit or im2col GEMM on the tensor cores per layer (\(tuned) layer\(tuned == 1 ? "" : "s") tuned for \(tensorCores.tableName) \(table.measured)"
                + " (\(ConvolutionLoweringTable.file().path)); others by default: \(byDefault))"
        }
    }

    func lowering(for plan: ConvPlan, backward: Bool) -> ConvolutionLowering {
        switch self {
        case .fixed(let lowering): return lowering
        case .perLayer(let table):
            if let choice = table?.choices[plan.layer] { return backward ? choice.backward : choice.forward }
            return ConvolutionLowering.defaultChoice(for: plan, backward: backward)
        }
    }
}

/// Starting GEMM configurations per device, keyed by vendor and device name: the first entry whose
/// patterns both occur (case-insensitively) wins. A tuned winner cached on disk (`xai-bench tune`)
/// takes precedence over this table, and `XAI_GEMM_KERNEL` over both.
public enum GEMMDeviceTable {
    public struct Entry: Sendable {
        public let vendor: String, device: String
        public let config: GEMMConfig
        /// Where the entry comes from (a measurement, or why it is a guess).
        public let source: String
    }

    public static let entries: [Entry] = [
        // PoCL on this project's AMD EPYC VMs: rows 66 GFLOP/s, CLBlast 25, tiled 9 (1024^3, 2026-11-27).
        Entry(vendor: "", device: "pthread", config: .rows, source: "measured on PoCL, AMD EPYC (Benchmarks/RESULTS.md)"),
        // NVIDIA H200: the baseline ran at 21.6 TFLOP/s, 43 % of cuBLAS (2026-11-27); not yet tuned there.
        Entry(vendor: "NVIDIA", device: "", config: .baseline, source: "measured on an H200 (43 % of cuBLAS); run xai-bench tune"),
    ]

    /// The table's configuration for a device: a matching entry, else `tiled` (the baseline) for
    /// GPUs and `rows` for other devices.
    public static func config(vendor: String, device: String, isGPU: Bool) -> (config: GEMMConfig, source: String) {
        for e in entries {
            let v = e.vendor.isEmpty || vendor.localizedCaseInsensitiveContains(e.vendor)
            let d = e.device.isEmpty || device.localizedCaseInsensitiveContains(e.device)
            if v && d { return (e.config, e.source) }
        }
        return isGPU ? (.baseline, "default for GPUs (untuned)") : (.rows, "default for CPU devices")
    }
}

/// The kernels' tunables for one device, decided once when a backend opens it. The same values
/// produce the `-D` build options and the launch geometry, so a kernel's `reqd_work_group_size`
/// and the host's launch cannot disagree.
struct KernelTunables: Sendable, Equatable {
    var gemm: GEMMConfig
    /// `gemm_rows`: rows of C per work-item.
    var cpuRows = 8
    /// `reduce_forward_group`: work-items per output (a power of two).
    var reduceGroup: Int
    /// Work-group shape of the `gemm_rows`/`gemm_dot` launches; `nil` lets the driver choose.
    var rowsLocal: [Int]?

    /// Build options: the language version and every tunable a kernel reads.
    var buildOptions: String {
        "-cl-std=CL1.2 -DTS=\(gemm.tile) -DWPT=\(gemm.workPerThread) -DTK=\(gemm.kSlice) -DVW=\(gemm.vectorWidth)"
            + " -DDB=\(gemm.doubleBuffer ? 1 : 0) -DSB=\(gemm.subBlock) -DPF=\(gemm.prefetch ? 1 : 0) -DCPU_ROWS=\(cpuRows) -DREDUCE_GROUP=\(reduceGroup)"
    }

    /// `XAI_GEMM_ROWS_LOCAL=N` sets the rows kernels' work-group (0: the driver's choice).
    init(isGPU: Bool, gemm: GEMMConfig, environment: [String: String] = ProcessInfo.processInfo.environment) {
        reduceGroup = isGPU ? 256 : 64
        self.gemm = gemm
        if let text = environment["XAI_GEMM_ROWS_LOCAL"], let v = Int(text), v >= 0 {
            rowsLocal = v == 0 ? nil : [v, 1, 1]
        } else {
            rowsLocal = [1, 1, 1]
        }
    }
}
