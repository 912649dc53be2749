import CDNNL
import Foundation
import XAICore

// Every call into oneDNN (Debian's libdnnl 2.x C API) lives in this file: its 2.x descriptor
// functions were removed in oneDNN 3.0, so a port touches only this file.

/// Memory layouts of the CPU backend's arrays.
enum CPULayout: Hashable, Sendable {
    /// Row-major (NCHW for images): what every host-side loop and `download` reads.
    case plain
    /// oneDNN's `nChw16c` / `nChw8c` for 4-D activations: channels in blocks of `b` (the padded
    /// tail of the last block is zero), so a pixel's `b` channels are one vector register.
    case channelBlocked(Int)

    var blockSize: Int? { if case .channelBlocked(let b) = self { return b }; return nil }
}

/// A convolution as oneDNN runs it: the primitive, the layouts it reads and writes, and the
/// implementation oneDNN chose (for `xai devices` and the benchmark header).
final class DNNLConvolution: @unchecked Sendable {
    let primitiveDesc: dnnl_primitive_desc_t
    let primitive: dnnl_primitive_t
    /// The weights layout the primitive wants (the model's OIHW weights are reordered to it once).
    let weightsDesc: dnnl_memory_desc_t
    let sourceDesc: dnnl_memory_desc_t
    let destinationDesc: dnnl_memory_desc_t
    /// The scratch memory the primitive needs at each execution (see ``OneDNN/execute(_:_:scratchpad:)``).
    let scratchpadDesc: dnnl_memory_desc_t
    let implementation: String
    let algorithm: ConvolutionAlgorithm
    /// For a 1x1 convolution with a fused depthwise one: the depthwise weights' layout.
    var depthwiseWeightsDesc: dnnl_memory_desc_t?

    init(primitiveDesc: dnnl_primitive_desc_t, primitive: dnnl_primitive_t, weightsDesc: dnnl_memory_desc_t,
         sourceDesc: dnnl_memory_desc_t, destinationDesc: dnnl_memory_desc_t, scratchpadDesc: dnnl_memory_desc_t,
         implementation: String, algorithm: ConvolutionAlgorithm) {
        self.scratchpadDesc = scratchpadDesc
        self.primitiveDesc = primitiveDesc
        self.primitive = primitive
        self.weightsDesc = weightsDesc
        self.sourceDesc = sourceDesc
        self.destinationDesc = destinationDesc
        self.implementation = implementation
        self.algorithm = algorithm
    }

    deinit {
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(primitiveDesc)
    }
}

/// How a convolution is computed.
public enum ConvolutionAlgorithm: String, Sendable, CaseIterable, Codable {
    /// Direct convolution (oneDNN's JIT kernels).
    case direct
    /// Winograd F(4x4, 3x3) for 3x3 stride-1 layers (fewer multiplications; AVX-512 only in oneDNN 2.x).
    case winograd
}

/// oneDNN's CPU engine and stream, and the primitives made on them, each created once per
/// configuration and reused. Execution is serialised: oneDNN's OpenMP threads do the parallel work
/// inside each primitive, so two callers at once would only oversubscribe the cores.
final class OneDNN: @unchecked Sendable {
    let engine: dnnl_engine_t
    let stream: dnnl_stream_t
    /// Channels per block of the blocked activations: 16 where oneDNN's kernels use AVX-512, else 8.
    let blockSize: Int
    let isa: String
    let version: String
    private let lock = NSLock()
    private var convolutions: [ConvolutionKey: DNNLConvolution?] = [:]
    private var reorders: [ReorderKey: (primitive: dnnl_primitive_t, scratchpad: dnnl_memory_desc_t)] = [:]
    private var eltwises: [EltwiseKey: (primitive: dnnl_primitive_t, scratchpad: dnnl_memory_desc_t)?] = [:]
    private var matmuls: [MatMulKey: DNNLMatMul?] = [:]
    /// The one scratchpad every primitive executes with, grown to the largest need (executions are
    /// serialised). Primitives are made in oneDNN's user-scratchpad mode: in its default library
    /// mode, 2.x ties a primitive's scratchpad to the thread that created it, and a Winograd
    /// convolution created on one thread and run on another crashed (two model handles on two
    /// threads through the C interface).
    private var scratchpad: UnsafeMutableRawPointer?
    private var scratchpadBytes = 0
    /// Primitives created so far (tests check that repeated passes create none).
    private(set) var primitivesCreated = 0
    /// Weight tensors reordered into a primitive's format so far (each layer's weights once per
    /// format; tests check that alternating batch sizes do not repeat them).
    private(set) var weightReorders = 0
    /// Fused 1x1 + depthwise convolutions run so far (tests check that MobileNetV2's pairs fuse).
    private(set) var fusedDepthwiseRuns = 0

    struct ConvolutionKey: Hashable {
        let plan: ConvPlan
        let backward: Bool
        let hasBias: Bool
        /// A residual added to the output (a binary post-op reading the skip tensor) before the activation.
        let hasResidual: Bool
        let activation: UnaryOp?
        let sourceLayout: CPULayout
        let destinationLayout: CPULayout
        let algorithm: ConvolutionAlgorithm
        /// A depthwise 3x3 convolution (with bias) fused after this 1x1 one, as oneDNN's depthwise
        /// post-op: the primitive writes its output, not the 1x1's.
        var depthwise: Depthwise? = nil
    }

    struct Depthwise: Hashable {
        let plan: ConvPlan
        let activation: UnaryOp?
    }

    /// A pointwise primitive over a flat array of `count` floats, forward or backward (from the input).
    struct EltwiseKey: Hashable {
        let op: UnaryOp
        let count: Int
        let backward: Bool
    }

    /// A matrix product `op(a) @ op(b)` over broadcast batch axes, as ``BatchedGemmPlan`` (a plain
    /// GEMM has no batch axes), with an optional bias of `n` values, output scale and activation.
    struct MatMulKey: Hashable {
        let plan: BatchedGemmPlan
        let hasBias: Bool
        let alpha: Float
        let activation: UnaryOp?
    }

    struct ReorderKey: Hashable {
        let dims: [Int]
        let from: CPULayout, to: CPULayout
        /// Weights: the destination is a primitive's chosen format, identified by the convolution.
        let weightsOf: ConvolutionKey?
        /// A destination with these strides per logical axis (a permute's output), not `to`'s.
        var strides: [Int]? = nil
    }

    /// The process's engine (every CPU backend shares it, its primitives and its Winograd choices),
    /// or `nil` when oneDNN cannot open one.
    static let shared: OneDNN? = open()

    /// Opens oneDNN's CPU engine, or returns `nil` when it cannot be created.
    static func open() -> OneDNN? {
        var engine: dnnl_engine_t?
        guard dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success, let engine else { return nil }
        var stream: dnnl_stream_t?
        guard dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue) == dnnl_success, let stream else {
            dnnl_engine_destroy(engine)
            return nil
        }
        return OneDNN(engine: engine, stream: stream)
    }

    private init(engine: dnnl_engine_t, stream: dnnl_stream_t) {
        self.engine = engine
        self.stream = stream
        let isa = dnnl_get_effective_cpu_isa()
        blockSize = isa.rawValue >= dnnl_cpu_isa_avx512_core.rawValue && isa != dnnl_cpu_isa_all ? 16 : 8
        self.isa = Self.isaName(isa)
        if let v = dnnl_version()?.pointee {
            version = "\(v.major).\(v.minor).\(v.patch)"
        } else {
            version = "unknown"
        }
    }

    deinit {
        for r in reorders.values { dnnl_primitive_destroy(r.primitive) }
        matmuls.removeAll()
        scratchpad?.deallocate()
        convolutions.removeAll()
        dnnl_stream_destroy(stream)
        dnnl_engine_destroy(engine)
    }

    static func isaName(_ isa: dnnl_cpu_isa_t) -> String {
        switch isa {
        case dnnl_cpu_isa_sse41: return "SSE4.1"
        case dnnl_cpu_isa_avx: return "AVX"
        case dnnl_cpu_isa_avx2: return "AVX2"
        case dnnl_cpu_isa_avx512_core: return "AVX-512"
        case dnnl_cpu_isa_avx512_core_vnni: return "AVX-512 VNNI"
        case dnnl_cpu_isa_avx512_core_bf16: return "AVX-512 BF16"
        case dnnl_cpu_isa_avx512_core_amx: return "AVX-512 AMX"
        case dnnl_cpu_isa_avx2_vnni: return "AVX2 VNNI"
        default: return "ISA \(isa.rawValue)"
        }
    }

    // MARK: Descriptors

    static func check(_ status: dnnl_status_t, _ call: String) throws {
        guard status == dnnl_success else {
            throw XAIError.unsupported(op: "oneDNN \(call)", reason: "status \(status.rawValue)")
        }
    }

    func tag(_ layout: CPULayout, rank: Int) -> dnnl_format_tag_t {
        switch layout {
        case .plain: return rank == 4 ? dnnl_nchw : (rank == 5 ? dnnl_goihw : (rank == 1 ? dnnl_a : dnnl_format_tag_any))
        case .channelBlocked(let b): return b == 16 ? dnnl_nChw16c : dnnl_nChw8c
        }
    }

    func desc(_ dims: [Int], _ tag: dnnl_format_tag_t) throws -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        try Self.check(dnnl_memory_desc_init_by_tag(&md, Int32(dims.count), dims.map(Int64.init), dnnl_f32, tag), "memory_desc_init_by_tag")
        return md
    }

    /// Bytes a descriptor's buffer needs (blocked layouts include their zero padding).
    func size(_ md: dnnl_memory_desc_t) -> Int {
        var m = md
        return dnnl_memory_desc_get_size(&m)
    }

    static func equal(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
        var x = a, y = b
        return dnnl_memory_desc_equal(&x, &y) != 0
    }

    /// The post-op for a fused activation, or `nil` when oneDNN 2.x has no equivalent (hard sigmoid).
    static func eltwise(_ op: UnaryOp) -> (dnnl_alg_kind_t, Float, Float)? {
        switch op {
        case .identity: return nil
        case .relu: return (dnnl_eltwise_relu, 0, 0)
        case .leakyRelu(let a): return (dnnl_eltwise_relu, a, 0)
        case .clip(let lo, let hi): return (dnnl_eltwise_clip, lo, hi)
        case .sigmoid: return (dnnl_eltwise_logistic, 0, 0)
        case .tanh: return (dnnl_eltwise_tanh, 0, 0)
        case .silu: return (dnnl_eltwise_swish, 1, 0)
        case .hardSwish: return (dnnl_eltwise_hardswish, 0, 0)
        case .gelu: return (dnnl_eltwise_gelu_erf, 0, 0)
        case .geluTanh: return (dnnl_eltwise_gelu_tanh, 0, 0)
        case .exp: return (dnnl_eltwise_exp, 0, 0)
        case .sqrt: return (dnnl_eltwise_sqrt, 0, 0)
        case .pow(let p): return (dnnl_eltwise_pow, 1, p)
        case .hardSigmoid, .erf: return nil
        }
    }

    // MARK: Convolutions

    /// The convolution primitive for `key`, created on first use; `nil` when oneDNN refuses the
    /// configuration (the caller then takes its own path). Thread-safe.
    func convolution(_ key: ConvolutionKey) -> DNNLConvolution? {
        lock.lock(); defer { lock.unlock() }
        if let known = convolutions[key] { return known }
        let made = try? makeConvolution(key)
        convolutions[key] = made
        return made
    }

    private func convolutionDesc(_ key: ConvolutionKey, propKind: dnnl_prop_kind_t, algorithm: dnnl_alg_kind_t,
                                 source: inout dnnl_memory_desc_t, weights: inout dnnl_memory_desc_t, bias: inout dnnl_memory_desc_t?,
                                 destination: inout dnnl_memory_desc_t, backward: Bool) throws -> dnnl_convolution_desc_t {
        let p = key.plan.params
        // oneDNN counts dilation from 0 (1 means one gap between taps).
        let strides = [Int64(p.strideH), Int64(p.strideW)], dilates = [Int64(p.dilationH - 1), Int64(p.dilationW - 1)]
        let padL = [Int64(p.padTop), Int64(p.padLeft)], padR = [Int64(p.padBottom), Int64(p.padRight)]
        var desc = dnnl_convolution_desc_t()
        if backward {
            try Self.check(dnnl_dilated_convolution_backward_data_desc_init(&desc, algorithm, &source, &weights, &destination,
                                                                            strides, dilates, padL, padR), "convolution_backward_data_desc_init")
        } else if var b = bias {
            try Self.check(dnnl_dilated_convolution_forward_desc_init(&desc, propKind, algorithm, &source, &weights, &b, &destination,
                                                                      strides, dilates, padL, padR), "convolution_forward_desc_init")
        } else {
            try Self.check(dnnl_dilated_convolution_forward_desc_init(&desc, propKind, algorithm, &source, &weights, nil, &destination,
                                                                      strides, dilates, padL, padR), "convolution_forward_desc_init")
        }
        return desc
    }

    private func makeConvolution(_ key: ConvolutionKey) throws -> DNNLConvolution {
        let p = key.plan
        let groups = p.params.groups
        let weightDims = groups == 1 ? p.weight.dims : [groups, p.outputChannels / groups, p.inputChannelsPerGroup, p.kernelHeight, p.kernelWidth]
        var source = try desc(p.input.dims, tag(key.sourceLayout, rank: 4))
        var destination = try desc(p.output.dims, tag(key.destinationLayout, rank: 4))
        var weights = try desc(weightDims, dnnl_format_tag_any)
        var bias: dnnl_memory_desc_t? = key.hasBias ? try desc([p.outputChannels], dnnl_a) : nil
        let algorithm = key.algorithm == .winograd ? dnnl_convolution_winograd : dnnl_convolution_direct
        let attr = try userScratchpadAttributes()
        defer { dnnl_primitive_attr_destroy(attr) }
        if key.hasResidual || key.activation != nil || key.depthwise != nil {
            var ops: dnnl_post_ops_t?
            try Self.check(dnnl_post_ops_create(&ops), "post_ops_create")
            defer { dnnl_post_ops_destroy(ops) }
            if key.hasResidual {
                // A binary add reads the skip tensor where it is. The sum post-op would accumulate
                // into the output, which must then start as a copy of the skip tensor: a whole
                // activation's extra write and read per residual block (on ResNet-50 at batch 32,
                // 23.6 ms against 17.7 ms for the first stage's 1x1 convolution).
                var skip = destination
                try Self.check(dnnl_post_ops_append_binary(ops, dnnl_binary_add, &skip), "post_ops_append_binary")
            }
            if let activation = key.activation, let (alg, alpha, beta) = Self.eltwise(activation) {
                try Self.check(dnnl_post_ops_append_eltwise(ops, 1, alg, alpha, beta), "post_ops_append_eltwise")
            }
            if let dw = key.depthwise {
                let q = dw.plan.params
                try Self.check(dnnl_post_ops_append_dw(ops, dnnl_f32, dnnl_f32, dnnl_f32, Int64(dw.plan.kernelHeight), Int64(q.strideH),
                                                       Int64(q.padTop), 0, 0, nil), "post_ops_append_dw")
                if let activation = dw.activation, let (alg, alpha, beta) = Self.eltwise(activation) {
                    try Self.check(dnnl_post_ops_append_eltwise(ops, 1, alg, alpha, beta), "post_ops_append_eltwise (depthwise)")
                }
            }
            try Self.check(dnnl_primitive_attr_set_post_ops(attr, ops), "primitive_attr_set_post_ops")
        }
        var pd: dnnl_primitive_desc_t?
        if key.backward {
            // Backward data needs the forward descriptor as a hint.
            var fsource = source, fdestination = destination, fweights = weights
            var nobias: dnnl_memory_desc_t? = nil
            var forward = try convolutionDesc(key, propKind: dnnl_forward_training, algorithm: algorithm, source: &fsource, weights: &fweights,
                                              bias: &nobias, destination: &fdestination, backward: false)
            var hint: dnnl_primitive_desc_t?
            try Self.check(dnnl_primitive_desc_create(&hint, &forward, nil, engine, nil), "primitive_desc_create (forward hint)")
            defer { dnnl_primitive_desc_destroy(hint) }
            var backward = try convolutionDesc(key, propKind: dnnl_backward_data, algorithm: algorithm, source: &source, weights: &weights,
                                               bias: &nobias, destination: &destination, backward: true)
            try Self.check(dnnl_primitive_desc_create(&pd, &backward, attr, engine, hint), "primitive_desc_create (backward data)")
        } else {
            var forward = try convolutionDesc(key, propKind: dnnl_forward_inference, algorithm: algorithm, source: &source, weights: &weights,
                                              bias: &bias, destination: &destination, backward: false)
            try Self.check(dnnl_primitive_desc_create(&pd, &forward, attr, engine, nil), "primitive_desc_create")
        }
        guard let pd else { throw XAIError.unsupported(op: "oneDNN convolution", reason: "no primitive descriptor") }
        var implementation: UnsafePointer<CChar>?
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &implementation)
        let implementationName = implementation.map { String(cString: $0) } ?? "?"
        // oneDNN's reference kernels ("ref:any", plain loops) are what it falls back to where no
        // JIT kernel fits, e.g. 8 input channels in 16-channel blocks: 20x slower than im2col +
        // OpenBLAS on the small fixture ResNet. The caller takes its own path instead.
        guard !implementationName.hasPrefix("ref") else {
            dnnl_primitive_desc_destroy(pd)
            throw XAIError.unsupported(op: "oneDNN convolution", reason: "only a reference kernel (\(implementationName))")
        }
        var primitive: dnnl_primitive_t?
        let status = dnnl_primitive_create(&primitive, pd)
        guard status == dnnl_success, let primitive else {
            dnnl_primitive_desc_destroy(pd)
            throw XAIError.unsupported(op: "oneDNN primitive_create", reason: "status \(status.rawValue)")
        }
        primitivesCreated += 1
        let query = { (what: dnnl_query_t) -> dnnl_memory_desc_t in dnnl_primitive_desc_query_md(pd, what, 0).pointee }
        let argument = { (arg: Int32) -> dnnl_memory_desc_t in dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg).pointee }
        let made = DNNLConvolution(primitiveDesc: pd, primitive: primitive, weightsDesc: query(dnnl_query_weights_md),
                                   sourceDesc: key.backward ? query(dnnl_query_diff_src_md) : query(dnnl_query_src_md),
                                   destinationDesc: key.backward ? query(dnnl_query_diff_dst_md)
                                       : key.depthwise != nil ? argument(xai_dnnl_arg_dst) : query(dnnl_query_dst_md),
                                   scratchpadDesc: query(dnnl_query_scratchpad_md), implementation: implementationName, algorithm: key.algorithm)
        if let dw = key.depthwise {
            // The fused primitive writes the depthwise convolution's output, in channel blocks.
            guard Self.equal(made.destinationDesc, try desc(dw.plan.output.dims, tag(key.destinationLayout, rank: 4))) else {
                throw XAIError.unsupported(op: "oneDNN fused depthwise convolution", reason: "unexpected output layout")
            }
            made.depthwiseWeightsDesc = argument(xai_dnnl_arg_depthwise_weights)
        }
        return made
    }

    /// Copies a 4-D activation between the plain and channel-blocked layouts.
    func reorder(_ shape: Shape, from: CPULayout, _ source: UnsafeMutablePointer<Float>, to: CPULayout,
                 _ destination: UnsafeMutablePointer<Float>) throws {
        try reorder(dims: shape.dims, from: try desc(shape.dims, tag(from, rank: 4)), source, to: try desc(shape.dims, tag(to, rank: 4)), destination,
                    key: .init(dims: shape.dims, from: from, to: to, weightsOf: nil))
    }

    /// Copies `shape` held in `layout` (plain row-major, or channel-blocked when 4-D) into
    /// `destination` laid out with `strides` per logical axis: a permute in one pass.
    func reorder(_ shape: Shape, from layout: CPULayout, _ source: UnsafeMutablePointer<Float>, toStrides strides: [Int],
                 _ destination: UnsafeMutablePointer<Float>) throws {
        func strided(_ s: [Int]) throws -> dnnl_memory_desc_t {
            var md = dnnl_memory_desc_t()
            try Self.check(dnnl_memory_desc_init_by_strides(&md, Int32(shape.rank), shape.dims.map(Int64.init), dnnl_f32, s.map(Int64.init)),
                           "memory_desc_init_by_strides")
            return md
        }
        let from = layout == .plain ? try strided(shape.strides) : try desc(shape.dims, tag(layout, rank: shape.rank))
        try reorder(dims: shape.dims, from: from, source, to: try strided(strides), destination,
                    key: .init(dims: shape.dims, from: layout, to: .plain, weightsOf: nil, strides: strides))
    }

    // MARK: Winograd or direct

    /// A layer's geometry without its batch size: the algorithm is chosen once per geometry, so a
    /// layer uses the same algorithm at every batch size (bit for bit where it is direct).
    struct Geometry: Hashable {
        let input: [Int], weight: Shape, params: Conv2DParams, backward: Bool

        init(_ plan: ConvPlan, backward: Bool) {
            input = Array(plan.input.dims.dropFirst())
            weight = plan.weight
            params = plan.params
            self.backward = backward
        }
    }
    private var choices: [Geometry: ConvolutionAlgorithm] = [:]

    /// How many of the convolution primitives made so far use each oneDNN implementation.
    var implementations: [String: Int] {
        lock.lock(); defer { lock.unlock() }
        return Dictionary(grouping: convolutions.values.compactMap { $0?.implementation }, by: { $0 }).mapValues(\.count)
    }

    /// The algorithm chosen for each geometry so far (for the benchmark header).
    var chosenAlgorithms: [ConvolutionAlgorithm: Int] {
        lock.lock(); defer { lock.unlock() }
        return Dictionary(grouping: choices.values, by: { $0 }).mapValues(\.count)
    }

    /// Runs a convolution with the algorithm the policy picks, by rule (never by timing, so that
    /// every run computes the same bits): `direct` everywhere; `winograd` wherever it applies;
    /// `auto` Winograd only for a plan that need not be exact (a forward-only pass), direct for
    /// every pass a gradient goes through. Falls back to direct where Winograd is refused.
    func choose(plan: ConvPlan, backward: Bool, eligible: Bool, policy: ConvolutionPolicy,
                run: (ConvolutionAlgorithm) throws -> DeviceArray?) throws -> DeviceArray? {
        let fast = eligible && (policy == .winograd || (policy == .auto && !plan.exact))
        let algorithm: ConvolutionAlgorithm = fast ? .winograd : .direct
        lock.lock()
        choices[Geometry(plan, backward: backward)] = algorithm
        lock.unlock()
        if fast, let y = try run(.winograd) { return y }
        return try run(.direct)
    }

    // MARK: Execution

    /// Primitive attributes asking for user-managed scratch memory (see ``scratchpad``).
    private func userScratchpadAttributes() throws -> dnnl_primitive_attr_t? {
        var attr: dnnl_primitive_attr_t?
        try Self.check(dnnl_primitive_attr_create(&attr), "primitive_attr_create")
        let status = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)
        guard status == dnnl_success else {
            dnnl_primitive_attr_destroy(attr)
            try Self.check(status, "primitive_attr_set_scratchpad_mode")
            return nil
        }
        return attr
    }

    /// Runs a primitive on raw buffers described by `args` (argument index, descriptor, pointer),
    /// with the shared scratchpad where it needs one.
    func execute(_ primitive: dnnl_primitive_t, _ args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)],
                 scratchpad scratchDesc: dnnl_memory_desc_t) throws {
        var memories: [dnnl_memory_t?] = []
        defer { for m in memories { dnnl_memory_destroy(m) } }
        var execArgs: [dnnl_exec_arg_t] = []
        for (arg, md, pointer) in args {
            var m: dnnl_memory_t?
            var d = md
            try Self.check(dnnl_memory_create(&m, &d, engine, pointer), "memory_create")
            memories.append(m)
            execArgs.append(dnnl_exec_arg_t(arg: arg, memory: m))
        }
        lock.lock(); defer { lock.unlock() }
        let scratchBytes = size(scratchDesc)
        if scratchBytes > 0 {
            if scratchBytes > scratchpadBytes {
                scratchpad?.deallocate()
                scratchpad = UnsafeMutableRawPointer.allocate(byteCount: scratchBytes, alignment: 64)
                scratchpadBytes = scratchBytes
            }
            var m: dnnl_memory_t?
            var d = scratchDesc
            try Self.check(dnnl_memory_create(&m, &d, engine, scratchpad), "memory_create (scratchpad)")
            memories.append(m)
            execArgs.append(dnnl_exec_arg_t(arg: xai_dnnl_arg_scratchpad, memory: m))
        }
        try Self.check(dnnl_primitive_execute(primitive, stream, Int32(execArgs.count), execArgs), "primitive_execute")
        try Self.check(dnnl_stream_wait(stream), "stream_wait")
    }

    /// Runs a forward convolution on buffers in the layouts `conv` was made for.
    /// `residual` (laid out as the destination) is the skip tensor of a convolution made with one.
    func forward(_ conv: DNNLConvolution, source: UnsafeMutablePointer<Float>, weights: UnsafeMutablePointer<Float>,
                 bias: UnsafeMutablePointer<Float>?, residual: UnsafeMutablePointer<Float>? = nil,
                 depthwise: (weights: UnsafeMutablePointer<Float>, bias: UnsafeMutablePointer<Float>)? = nil,
                 destination: UnsafeMutablePointer<Float>) throws {
        var args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)] = [
            (xai_dnnl_arg_src, conv.sourceDesc, UnsafeMutableRawPointer(source)),
            (xai_dnnl_arg_weights, conv.weightsDesc, UnsafeMutableRawPointer(weights)),
            (xai_dnnl_arg_dst, conv.destinationDesc, UnsafeMutableRawPointer(destination)),
        ]
        if let residual { args.append((xai_dnnl_arg_first_post_op_src1, conv.destinationDesc, UnsafeMutableRawPointer(residual))) }
        if let depthwise, let dwDesc = conv.depthwiseWeightsDesc {
            lock.lock(); fusedDepthwiseRuns += 1; lock.unlock()
            let channels = Int(conv.destinationDesc.dims.1)
            args.append((xai_dnnl_arg_depthwise_weights, dwDesc, UnsafeMutableRawPointer(depthwise.weights)))
            args.append((xai_dnnl_arg_depthwise_bias, try desc([channels], dnnl_a), UnsafeMutableRawPointer(depthwise.bias)))
        }
        if let bias {
            let channels = Int(conv.destinationDesc.dims.1)
            args.append((xai_dnnl_arg_bias, try desc([channels], dnnl_a), UnsafeMutableRawPointer(bias)))
        }
        try execute(conv.primitive, args, scratchpad: conv.scratchpadDesc)
    }

    /// Runs a backward-data convolution: the input's gradient from the output's.
    func backwardData(_ conv: DNNLConvolution, gradOutput: UnsafeMutablePointer<Float>, weights: UnsafeMutablePointer<Float>,
                      gradInput: UnsafeMutablePointer<Float>) throws {
        try execute(conv.primitive, [
            (xai_dnnl_arg_diff_dst, conv.destinationDesc, UnsafeMutableRawPointer(gradOutput)),
            (xai_dnnl_arg_weights, conv.weightsDesc, UnsafeMutableRawPointer(weights)),
            (xai_dnnl_arg_diff_src, conv.sourceDesc, UnsafeMutableRawPointer(gradInput)),
        ], scratchpad: conv.scratchpadDesc)
    }

    /// The weights' dims as oneDNN sees them (grouped weights get a leading group axis) and their
    /// plain (OIHW / GOIHW) descriptor.
    private func plainWeights(_ plan: ConvPlan) throws -> ([Int], dnnl_memory_desc_t) {
        let groups = plan.params.groups
        let dims = groups == 1 ? plan.weight.dims : [groups, plan.outputChannels / groups, plan.inputChannelsPerGroup, plan.kernelHeight, plan.kernelWidth]
        return (dims, try desc(dims, groups == 1 ? dnnl_oihw : dnnl_goihw))
    }

    /// Bytes of the weights in the format `conv` chose, or `nil` when that is the plain OIHW layout.
    func weightsSizeIfReordered(_ conv: DNNLConvolution, plan: ConvPlan) throws -> Int? {
        let (_, plain) = try plainWeights(plan)
        return Self.equal(plain, conv.weightsDesc) ? nil : size(conv.weightsDesc)
    }

    /// Reorders OIHW weights into the format `conv` chose.
    func reorderWeights(_ source: UnsafeMutablePointer<Float>, into destination: UnsafeMutablePointer<Float>, for conv: DNNLConvolution,
                        key: ConvolutionKey) throws {
        let (dims, plain) = try plainWeights(key.plan)
        lock.lock(); weightReorders += 1; lock.unlock()
        try reorder(dims: dims, from: plain, source, to: conv.weightsDesc, destination,
                    key: .init(dims: dims, from: .plain, to: .plain, weightsOf: key))
    }

    /// Reorders a fused depthwise convolution's `[C, 1, 3, 3]` weights into the format `conv` chose.
    func reorderDepthwiseWeights(_ source: UnsafeMutablePointer<Float>, into destination: UnsafeMutablePointer<Float>,
                                 for conv: DNNLConvolution, key: ConvolutionKey) throws {
        guard let dw = key.depthwise, let to = conv.depthwiseWeightsDesc else {
            throw XAIError.unsupported(op: "oneDNN fused depthwise convolution", reason: "the primitive has no depthwise post-op")
        }
        let w = dw.plan.weight
        let dims = [w[0], 1, 1, w[2], w[3]]
        lock.lock(); weightReorders += 1; lock.unlock()
        try reorder(dims: dims, from: try desc(dims, dnnl_goihw), source, to: to, destination,
                    key: .init(dims: dims, from: .plain, to: .plain, weightsOf: key))
    }

    /// Copies elements between layouts: a reorder primitive, created once per (dims, layouts).
    func reorder(dims: [Int], from: dnnl_memory_desc_t, _ source: UnsafeMutablePointer<Float>, to: dnnl_memory_desc_t,
                 _ destination: UnsafeMutablePointer<Float>, key: ReorderKey) throws {
        let primitive: (primitive: dnnl_primitive_t, scratchpad: dnnl_memory_desc_t)
        lock.lock()
        if let known = reorders[key] {
            primitive = known
            lock.unlock()
        } else {
            defer { lock.unlock() }
            var pd: dnnl_primitive_desc_t?
            var f = from, t = to
            let attr = try userScratchpadAttributes()
            defer { dnnl_primitive_attr_destroy(attr) }
            try Self.check(dnnl_reorder_primitive_desc_create(&pd, &f, engine, &t, engine, attr), "reorder_primitive_desc_create")
            defer { dnnl_primitive_desc_destroy(pd) }
            var made: dnnl_primitive_t?
            try Self.check(dnnl_primitive_create(&made, pd), "primitive_create (reorder)")
            guard let made else { throw XAIError.unsupported(op: "oneDNN reorder", reason: "no primitive") }
            primitivesCreated += 1
            primitive = (made, dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0).pointee)
            reorders[key] = primitive
        }
        try execute(primitive.primitive, [(xai_dnnl_arg_from, from, UnsafeMutableRawPointer(source)), (xai_dnnl_arg_to, to, UnsafeMutableRawPointer(destination))],
                    scratchpad: primitive.scratchpad)
    }

    // MARK: Pointwise functions

    /// oneDNN's pointwise primitive for `op` over `count` floats (JIT-vectorised; GELU's erf among
    /// them), made on first use; `nil` where oneDNN has no such function or refuses it.
    private func eltwisePrimitive(_ key: EltwiseKey) -> (primitive: dnnl_primitive_t, scratchpad: dnnl_memory_desc_t)? {
        lock.lock(); defer { lock.unlock() }
        if let known = eltwises[key] { return known }
        let made = try? makeEltwise(key)
        eltwises[key] = made
        return made
    }

    private func makeEltwise(_ key: EltwiseKey) throws -> (primitive: dnnl_primitive_t, scratchpad: dnnl_memory_desc_t)? {
        guard let (algorithm, alpha, beta) = Self.eltwise(key.op) else { return nil }
        var data = try desc([key.count], dnnl_a)
        var forward = dnnl_eltwise_desc_t()
        try Self.check(dnnl_eltwise_forward_desc_init(&forward, key.backward ? dnnl_forward_training : dnnl_forward_inference, algorithm, &data, alpha, beta),
                       "eltwise_forward_desc_init")
        let attr = try userScratchpadAttributes()
        defer { dnnl_primitive_attr_destroy(attr) }
        var pd: dnnl_primitive_desc_t?
        if key.backward {
            var hint: dnnl_primitive_desc_t?
            try Self.check(dnnl_primitive_desc_create(&hint, &forward, nil, engine, nil), "primitive_desc_create (eltwise hint)")
            defer { dnnl_primitive_desc_destroy(hint) }
            var backward = dnnl_eltwise_desc_t()
            var diff = data
            try Self.check(dnnl_eltwise_backward_desc_init(&backward, algorithm, &diff, &data, alpha, beta), "eltwise_backward_desc_init")
            try Self.check(dnnl_primitive_desc_create(&pd, &backward, attr, engine, hint), "primitive_desc_create (eltwise backward)")
        } else {
            try Self.check(dnnl_primitive_desc_create(&pd, &forward, attr, engine, nil), "primitive_desc_create (eltwise)")
        }
        defer { dnnl_primitive_desc_destroy(pd) }
        var primitive: dnnl_primitive_t?
        try Self.check(dnnl_primitive_create(&primitive, pd), "primitive_create (eltwise)")
        guard let primitive else { return nil }
        primitivesCreated += 1
        return (primitive, dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0).pointee)
    }

    /// `out = op(x)` over `count` floats through oneDNN; `false` (nothing written) where oneDNN has no primitive for it.
    func eltwise(_ op: UnaryOp, count: Int, source: UnsafeMutablePointer<Float>, destination: UnsafeMutablePointer<Float>) throws -> Bool {
        guard let p = eltwisePrimitive(EltwiseKey(op: op, count: count, backward: false)) else { return false }
        let md = try desc([count], dnnl_a)
        try execute(p.primitive, [(xai_dnnl_arg_src, md, UnsafeMutableRawPointer(source)), (xai_dnnl_arg_dst, md, UnsafeMutableRawPointer(destination))],
                    scratchpad: p.scratchpad)
        return true
    }

    /// `out = gradOutput * op'(x)` over `count` floats through oneDNN, from the op's input; `false` where it cannot.
    func eltwiseBackward(_ op: UnaryOp, count: Int, gradOutput: UnsafeMutablePointer<Float>, source: UnsafeMutablePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>) throws -> Bool {
        guard let p = eltwisePrimitive(EltwiseKey(op: op, count: count, backward: true)) else { return false }
        let md = try desc([count], dnnl_a)
        try execute(p.primitive, [(xai_dnnl_arg_src, md, UnsafeMutableRawPointer(source)),
                                  (xai_dnnl_arg_diff_dst, md, UnsafeMutableRawPointer(gradOutput)),
                                  (xai_dnnl_arg_diff_src, md, UnsafeMutableRawPointer(gradInput))], scratchpad: p.scratchpad)
        return true
    }

    // MARK: Matrix products

    /// The matmul primitive for `key`, created on first use; `nil` when oneDNN refuses it (the caller
    /// then runs OpenBLAS). Thread-safe. The cache is emptied when it reaches 512 shapes (a method
    /// that varies its batch size makes a few per layer).
    func matmul(_ key: MatMulKey) -> DNNLMatMul? {
        lock.lock(); defer { lock.unlock() }
        if let known = matmuls[key] { return known }
        if matmuls.count >= 512 { matmuls.removeAll() }
        let made = try? makeMatMul(key)
        matmuls[key] = made
        return made
    }

    /// A row-major operand's descriptor: logical dims `batch + [rows, columns]`, stored as
    /// `batch + [columns, rows]` where `transposed`.
    private func matrixDesc(batch: [Int], rows: Int, columns: Int, transposed: Bool) throws -> dnnl_memory_desc_t {
        let dims = batch + [rows, columns]
        var strides = [Int](repeating: 0, count: dims.count)
        let r = dims.count
        (strides[r - 2], strides[r - 1]) = transposed ? (1, rows) : (columns, 1)
        var step = rows * columns
        for i in Swift.stride(from: r - 3, through: 0, by: -1) {
            strides[i] = step
            step *= dims[i]
        }
        var md = dnnl_memory_desc_t()
        try Self.check(dnnl_memory_desc_init_by_strides(&md, Int32(r), dims.map(Int64.init), dnnl_f32, strides.map(Int64.init)),
                       "memory_desc_init_by_strides")
        return md
    }

    private func makeMatMul(_ key: MatMulKey) throws -> DNNLMatMul {
        let p = key.plan
        var a = try matrixDesc(batch: p.batchA, rows: p.m, columns: p.k, transposed: p.transposeA)
        var b = try matrixDesc(batch: p.batchB, rows: p.k, columns: p.n, transposed: p.transposeB)
        var c = try matrixDesc(batch: p.batch, rows: p.m, columns: p.n, transposed: false)
        var bias = try matrixDesc(batch: p.batch.map { _ in 1 }, rows: 1, columns: p.n, transposed: false)
        var desc = dnnl_matmul_desc_t()
        if key.hasBias {
            try Self.check(dnnl_matmul_desc_init(&desc, &a, &b, &bias, &c), "matmul_desc_init")
        } else {
            try Self.check(dnnl_matmul_desc_init(&desc, &a, &b, nil, &c), "matmul_desc_init")
        }
        let attr = try userScratchpadAttributes()
        defer { dnnl_primitive_attr_destroy(attr) }
        if key.alpha != 1 {
            var scale = key.alpha
            try Self.check(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale), "primitive_attr_set_output_scales")
        }
        if let op = key.activation {
            guard let (algorithm, alpha, beta) = Self.eltwise(op) else {
                throw XAIError.unsupported(op: "oneDNN matmul", reason: "no post-op for \(op)")
            }
            var postOps: dnnl_post_ops_t?
            try Self.check(dnnl_post_ops_create(&postOps), "post_ops_create")
            defer { dnnl_post_ops_destroy(postOps) }
            try Self.check(dnnl_post_ops_append_eltwise(postOps, 1, algorithm, alpha, beta), "post_ops_append_eltwise")
            try Self.check(dnnl_primitive_attr_set_post_ops(attr, postOps), "primitive_attr_set_post_ops")
        }
        var pd: dnnl_primitive_desc_t?
        try Self.check(dnnl_primitive_desc_create(&pd, &desc, attr, engine, nil), "primitive_desc_create (matmul)")
        defer { dnnl_primitive_desc_destroy(pd) }
        var primitive: dnnl_primitive_t?
        try Self.check(dnnl_primitive_create(&primitive, pd), "primitive_create (matmul)")
        guard let primitive else { throw XAIError.unsupported(op: "oneDNN matmul", reason: "no primitive") }
        primitivesCreated += 1
        var implementation: UnsafePointer<CChar>?
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &implementation)
        return DNNLMatMul(primitive: primitive, a: a, b: b, c: c, bias: bias,
                          scratchpad: dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0).pointee,
                          implementation: implementation.map { String(cString: $0) } ?? "unknown")
    }

    /// Runs a matmul primitive on row-major buffers laid out as its key says.
    func run(_ matmul: DNNLMatMul, a: UnsafeMutablePointer<Float>, b: UnsafeMutablePointer<Float>, bias: UnsafeMutablePointer<Float>?,
             c: UnsafeMutablePointer<Float>) throws {
        var args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)] = [
            (xai_dnnl_arg_src, matmul.a, UnsafeMutableRawPointer(a)),
            (xai_dnnl_arg_weights, matmul.b, UnsafeMutableRawPointer(b)),
            (xai_dnnl_arg_dst, matmul.c, UnsafeMutableRawPointer(c)),
        ]
        if let bias { args.append((xai_dnnl_arg_bias, matmul.bias, UnsafeMutableRawPointer(bias))) }
        try execute(matmul.primitive, args, scratchpad: matmul.scratchpad)
    }
}

/// A matmul primitive and the descriptors of its operands.
final class DNNLMatMul: @unchecked Sendable {
    let primitive: dnnl_primitive_t
    let a: dnnl_memory_desc_t, b: dnnl_memory_desc_t, c: dnnl_memory_desc_t, bias: dnnl_memory_desc_t
    let scratchpad: dnnl_memory_desc_t
    let implementation: String

    init(primitive: dnnl_primitive_t, a: dnnl_memory_desc_t, b: dnnl_memory_desc_t, c: dnnl_memory_desc_t, bias: dnnl_memory_desc_t,
         scratchpad: dnnl_memory_desc_t, implementation: String) {
        (self.primitive, self.a, self.b, self.c, self.bias, self.scratchpad, self.implementation) = (primitive, a, b, c, bias, scratchpad, implementation)
    }

    deinit { dnnl_primitive_destroy(primitive) }
}
