/// Backend-owned memory behind a ``DeviceArray``. Each backend defines its own and refuses the others'.
public protocol DeviceStorage: AnyObject, Sendable {}

/// A dense float32 array resident on a backend's device, in the same row-major/NCHW layout as
/// ``Tensor``. Storage is released (or returned to the backend's pool) when the last reference goes.
public final class DeviceArray: Sendable, CustomStringConvertible {
    /// The array's dimensions.
    public let shape: Shape
    /// The backend's memory; read it only through the backend that made it.
    public let storage: any DeviceStorage

    public init(shape: Shape, storage: any DeviceStorage) {
        self.shape = shape
        self.storage = storage
    }

    /// The same memory viewed with another shape of the same element count (no copy).
    /// - Throws: ``XAIError/shapeMismatch(op:expected:got:)`` when the counts differ.
    public func reshaped(_ newShape: Shape) throws -> DeviceArray {
        guard newShape.count == shape.count else {
            throw XAIError.shapeMismatch(op: "reshape", expected: "\(shape.count) elements", got: [shape, newShape])
        }
        return DeviceArray(shape: newShape, storage: storage)
    }

    public var description: String { "DeviceArray\(shape)" }
}

/// The primitives of the ``Backend`` contract, for ``Backend/supports(_:)``.
public enum Primitive: String, Sendable, CaseIterable {
    case gemm, conv2d, conv2dBackwardInput, pool2d, pool2dBackward
    case unary, unaryBackward, binary
    case reduce, reduceBackward, softmax, softmaxBackward, layerNorm, layerNormBackward
    case resizeBilinear, resizeBilinearBackward
    case masks, composite
    /// Noisy copies of an item from the counter-based generator, and running sums of rows.
    case noise, runningSum
    /// Strided copies: permute, slice, pad and concat.
    case move
}

/// What a backend tells benchmarks and reports about itself, so they need not know its type.
public struct BackendDetails: Sendable, Equatable {
    /// Whether it computes on a GPU (an OpenCL CPU device such as PoCL is not one).
    public var isGPU: Bool
    /// Whether convolutions may run on an algorithm that does fewer multiplications than a
    /// direct convolution (Winograd), so FLOPs counted as direct overstate the work.
    public var mayUseFastConvolutions: Bool
    /// Named facts for a benchmark's header, in order (the GEMM kernel and where its tuning came from).
    public var facts: [(String, String)]
    /// The rule that picks the algorithms, for the provenance of a result: the same rule and
    /// inputs give the same bits.
    public var algorithms: String
    /// Whether its GEMMs run on tensor cores (``Precision/tf32``, ``Precision/tf32x3``), where asked
    /// for and available.
    public var tensorCores: Bool

    public init(isGPU: Bool = false, mayUseFastConvolutions: Bool = false, tensorCores: Bool = false,
                facts: [(String, String)] = [], algorithms: String = "") {
        self.isGPU = isGPU
        self.mayUseFastConvolutions = mayUseFastConvolutions
        self.tensorCores = tensorCores
        self.facts = facts
        self.algorithms = algorithms
    }

    public static func == (a: BackendDetails, b: BackendDetails) -> Bool {
        a.isGPU == b.isGPU && a.mayUseFastConvolutions == b.mayUseFastConvolutions && a.tensorCores == b.tensorCores
            && a.algorithms == b.algorithms
            && a.facts.map { [$0.0, $0.1] } == b.facts.map { [$0.0, $0.1] }
    }
}

/// The small set of primitives every compute backend provides.
///
/// Callers never call the requirements below directly: they call the checked entry points of the
/// same names without the `plan:` argument (`Backend+Checked.swift`), which validate the operands
/// once, build the plan the requirement receives, and send a primitive the backend does not
/// ``supports(_:)`` to the float64 host implementation. A backend therefore assumes valid operands
/// and checks only that arrays are its own. Composites (fully connected layers, global pooling,
/// broadcasting backward rules) are written once above the primitives in `Backend+Composites.swift`.
///
/// All primitives take and return contiguous arrays; none mutates its inputs. Backward primitives
/// compute gradients with respect to activations and inputs only, never to weights.
public protocol Backend: AnyObject, Sendable {
    /// The device this backend computes on.
    var device: Device { get }
    /// A human-readable name, e.g. `cpu (OpenBLAS, 2 cores)` or `opencl:0 (NVIDIA H100)`.
    var name: String { get }
    /// Bytes the backend may use for workspaces and batches; methods size their batches from it.
    var memoryBudget: Int { get }
    /// What benchmarks and reports say about the backend beyond its name.
    var details: BackendDetails { get }

    /// Whether the backend implements `primitive` itself. Those it does not are run on the host in
    /// float64 (download, compute, upload): correct, slow, and a way to bring up a new backend one
    /// primitive at a time. Every backend answers for itself (no default), so a new primitive makes
    /// each one decide.
    func supports(_ primitive: Primitive) -> Bool

    // MARK: Memory

    /// Copies a host tensor to the device.
    /// - Throws: ``XAIError/outOfMemory(op:bytes:device:)`` when the array does not fit.
    func upload(_ tensor: Tensor) throws -> DeviceArray
    /// Copies a device array to the host (waiting for the work that produces it).
    /// - Throws: ``XAIError/wrongDevice(op:expected:got:)`` for another backend's array.
    func download(_ array: DeviceArray) throws -> Tensor
    /// A new array with every element set to `value`.
    func filled(_ shape: Shape, value: Float) throws -> DeviceArray
    /// Waits until every queued command has finished. Benchmarks time device work with it: a
    /// download would add the host transfer, which on a discrete GPU costs more than the work.
    func synchronize() throws

    // MARK: Primitives (called through the checked entry points)

    /// `activation(alpha * op(a) * op(b) + bias)`; result `[M, N]`, `bias` `[N]` added to every row.
    /// - Parameters:
    ///   - a: `[M, K]`, or `[K, M]` when `plan.transposeA`.
    ///   - b: `[K, N]`, or `[N, K]` when `plan.transposeB`.
    ///   - plan: the validated extents.
    /// - Throws: ``XAIError/wrongDevice(op:expected:got:)``, ``XAIError/outOfMemory(op:bytes:device:)``.
    func gemm(_ a: DeviceArray, _ b: DeviceArray, plan: GemmPlan, alpha: Float, bias: DeviceArray?, activation: UnaryOp) throws -> DeviceArray
    /// `op(a) @ op(b)` for every matrix of the broadcast batch in one call (attention's products),
    /// reading each operand in place: no per-matrix slices, no broadcast copies. `nil` where the
    /// backend has no such path; ``batchedMatMul(_:_:transposeA:transposeB:bias:)`` then runs one
    /// ``gemm(_:_:plan:alpha:bias:activation:)`` per matrix.
    func batchedGemm(_ a: DeviceArray, _ b: DeviceArray, plan: BatchedGemmPlan) throws -> DeviceArray?
    /// `activation(conv(x, weight) + bias + residual)`.
    /// - Parameters:
    ///   - x: `[N, Cin, H, W]`.
    ///   - weight: `[Cout, Cin / groups, kH, kW]`.
    ///   - bias: `[Cout]`, or `nil`.
    ///   - residual: an array shaped like the output, added before the activation (a ResNet's skip
    ///     connection), or `nil`.
    ///   - plan: the validated geometry, with the output shape.
    /// - Throws: ``XAIError/wrongDevice(op:expected:got:)``, ``XAIError/outOfMemory(op:bytes:device:)``.
    func conv2d(_ x: DeviceArray, weight: DeviceArray, bias: DeviceArray?, residual: DeviceArray?, plan: ConvPlan, activation: UnaryOp) throws -> DeviceArray
    /// `depthwise(pointwise(x))` for a 1x1 convolution and the depthwise convolution that reads
    /// only its output (MobileNet's expansion and depthwise layers) as one operation, where the
    /// backend can fuse them so that the expanded activation, the block's largest, never goes to
    /// memory whole; `nil` where it cannot, and the caller runs the two (the default). Forward only:
    /// the intermediate activation is not kept.
    func conv2dThenDepthwise(_ x: DeviceArray, pointwise: ConvolutionStep, depthwise: ConvolutionStep) throws -> DeviceArray?
    /// `r / (z + s sign z)` (sign 0 = +1) for same-shaped `r` and `z` in one loop, where the
    /// backend has one; `nil` where it has not, and ``stabilizedDivide(_:by:stabilizer:)`` composes
    /// it (the default).
    func fusedStabilizedDivide(_ r: DeviceArray, by z: DeviceArray, stabilizer s: Float) throws -> DeviceArray?
    /// Guided backpropagation's rule at a rectifier, `relu(g * (v > 0))` with `v` its input or
    /// output, in one pass where the backend has one; `nil` where it has not (the caller composes
    /// the gradient and a ReLU, the default).
    func guidedReLUBackward(_ gradOutput: DeviceArray, value: DeviceArray) throws -> DeviceArray?
    /// ``conv2dBackwardInput(_:weight:plan:)`` with `store` done in the same kernels' stores, where
    /// the backend has such stores; `nil` where it has not (the checked entry point composes the
    /// convolution's gradient, an add and an activation's backward: the default). The result must
    /// be the composition's, bit for bit. `store`'s arrays are shaped as `plan.input` (checked).
    func conv2dBackwardInput(_ gradOutput: DeviceArray, weight: DeviceArray, plan: ConvPlan, store: GradientStore) throws -> DeviceArray?
    /// The gradient of a (bias-free, activation-free) convolution with respect to its input `[N, Cin, H, W]`.
    /// - Parameters:
    ///   - gradOutput: the gradient of the output, `plan.output`.
    ///   - weight: `[Cout, Cin / groups, kH, kW]`.
    ///   - plan: the validated geometry (`plan.input` is the shape of the result).
    func conv2dBackwardInput(_ gradOutput: DeviceArray, weight: DeviceArray, plan: ConvPlan) throws -> DeviceArray
    /// Max or average pooling.
    func pool2d(_ x: DeviceArray, plan: PoolPlan) throws -> DeviceArray
    /// The gradient of pooling; max pooling sends each output's gradient to the first maximum of its
    /// window (PyTorch's choice).
    func pool2dBackward(_ gradOutput: DeviceArray, input: DeviceArray, plan: PoolPlan) throws -> DeviceArray
    /// A pointwise function.
    func unary(_ x: DeviceArray, plan: UnaryPlan) throws -> DeviceArray
    /// `gradOutput * op'(.)`, evaluated from the op's input, or from its output when `plan.valueIsOutput`.
    func unaryBackward(_ gradOutput: DeviceArray, value: DeviceArray, plan: UnaryBackwardPlan) throws -> DeviceArray
    /// Elementwise `a op b` with numpy broadcasting.
    func binary(_ op: BinaryOp, _ a: DeviceArray, _ b: DeviceArray, plan: BroadcastPlan) throws -> DeviceArray
    /// Reduces over the plan's axes, keeping them as extent-1 axes.
    func reduce(_ op: ReduceOp, _ x: DeviceArray, plan: ReducePlan) throws -> DeviceArray
    /// The gradient of ``reduce(_:_:plan:)``: broadcast for sum and mean; for max and min, shared
    /// equally among the tied extrema of `input`.
    func reduceBackward(_ op: ReduceOp, gradOutput: DeviceArray, input: DeviceArray, plan: ReducePlan) throws -> DeviceArray
    /// Softmax (or log-softmax) along the plan's axis.
    func softmax(_ x: DeviceArray, plan: SoftmaxPlan) throws -> DeviceArray
    /// The gradient of ``softmax(_:plan:)`` given its output.
    func softmaxBackward(_ gradOutput: DeviceArray, output: DeviceArray, plan: SoftmaxPlan) throws -> DeviceArray
    /// Layer normalisation of each row of `plan.columns` values: `(x - mean) / sqrt(var + epsilon)`,
    /// times `scale` and plus `bias` (both `plan.columns` values, `bias` optional).
    func layerNorm(_ x: DeviceArray, scale: DeviceArray, bias: DeviceArray?, plan: LayerNormPlan) throws -> DeviceArray
    /// The gradient of ``layerNorm(_:scale:bias:plan:)`` with respect to `x`.
    func layerNormBackward(_ gradOutput: DeviceArray, input: DeviceArray, scale: DeviceArray, plan: LayerNormPlan) throws -> DeviceArray
    /// Bilinear resize of the spatial axes (PyTorch `interpolate` semantics).
    func resizeBilinear(_ x: DeviceArray, plan: ResizePlan) throws -> DeviceArray
    /// The gradient of ``resizeBilinear(_:plan:)`` (`gradOutput` is `plan.output`, the result `plan.input`).
    func resizeBilinearBackward(_ gradOutput: DeviceArray, plan: ResizePlan) throws -> DeviceArray
    /// Expands compact mask descriptions to `[N, 1, H, W]` on the device.
    func masks(plan: MaskPlan) throws -> DeviceArray
    /// `out[n] = image * m[n] + baseline * (1 - m[n])` for `image` and `baseline` `[1, C, H, W]`,
    /// the masks built on the device. Result `[N, C, H, W]`.
    func composite(image: DeviceArray, baseline: DeviceArray, plan: CompositePlan) throws -> DeviceArray
    /// `plan.copies` noisy copies of `item` (`[1, ...]`): copy `k` is `item + sigma * z` with `z`
    /// stream `plan.firstStream + k` of ``CounterRandom`` (the same bits on every backend).
    func noise(_ item: DeviceArray, plan: NoisePlan) throws -> DeviceArray
    /// The state `[4, item]` (sum, its compensation, sum of squares, its compensation) after adding
    /// the rows of `rows` in order to `state` (zeros when `nil`), each element on its own, in float32
    /// with Neumaier's compensation: ``RunningSum/add(_:rows:item:state:absolute:elements:)``.
    func runningSum(_ rows: DeviceArray, state: DeviceArray?, plan: RunningSumPlan) throws -> DeviceArray
    /// A new array of `plan.outputShape`, filled with `plan.fill`, into which the plan's boxes of
    /// `inputs` are copied (permute, slice, pad and concat are all such moves).
    func move(_ inputs: [DeviceArray], plan: MovementPlan) throws -> DeviceArray
}

/// One convolution of a fused pair (``Backend/conv2dThenDepthwise(_:pointwise:depthwise:)``):
/// `activation(conv(input, weight) + bias)` with its validated geometry.
public struct ConvolutionStep {
    public let weight: DeviceArray
    public let bias: DeviceArray?
    public let plan: ConvPlan
    public let activation: UnaryOp

    public init(weight: DeviceArray, bias: DeviceArray?, plan: ConvPlan, activation: UnaryOp) {
        (self.weight, self.bias, self.plan, self.activation) = (weight, bias, plan, activation)
    }
}

extension Backend {
    public func conv2dThenDepthwise(_ x: DeviceArray, pointwise: ConvolutionStep, depthwise: ConvolutionStep) throws -> DeviceArray? { nil }
    public func batchedGemm(_ a: DeviceArray, _ b: DeviceArray, plan: BatchedGemmPlan) throws -> DeviceArray? { nil }
    public func fusedStabilizedDivide(_ r: DeviceArray, by z: DeviceArray, stabilizer s: Float) throws -> DeviceArray? { nil }
    public func guidedReLUBackward(_ gradOutput: DeviceArray, value: DeviceArray) throws -> DeviceArray? { nil }
    public func conv2dBackwardInput(_ gradOutput: DeviceArray, weight: DeviceArray, plan: ConvPlan, store: GradientStore) throws -> DeviceArray? { nil }
    /// Backends that compute synchronously (the CPU) have nothing to wait for.
    public func synchronize() throws {}
}

/// What the store of an input gradient does besides writing it: `(accumulated + dx) *
/// activation'(activationOutput)`. A backward that sums a value's gradients from its consumers and
/// then carries the sum back through the activation that made the value (a ResNet block's
/// shortcut and rectifier) can do both in the store of the value's last gradient instead of two
/// elementwise launches, each a pass over the activation in memory.
public struct GradientStore {
    /// The gradient the value already has from its other consumers, added to this one; or `nil`.
    public var accumulated: DeviceArray?
    /// The activation whose output the value is, with that output: the store multiplies by the
    /// activation's derivative, read from its output (as ``Backend/unaryBackward(_:gradOutput:value:valueIsOutput:)``
    /// with `valueIsOutput`); or `nil`.
    public var activation: (op: UnaryOp, output: DeviceArray)?

    public init(accumulated: DeviceArray? = nil, activation: (op: UnaryOp, output: DeviceArray)? = nil) {
        self.accumulated = accumulated
        self.activation = activation?.op == .identity ? nil : activation
    }

    /// Whether the store only writes.
    public var isEmpty: Bool { accumulated == nil && activation == nil }

    /// The store as the operations it stands for, on `dx` (the bits every fused store must give):
    /// the add, then the activation's backward from its output.
    public func composed(_ dx: DeviceArray, on backend: any Backend) throws -> DeviceArray {
        var dx = dx
        if let accumulated { dx = try backend.binary(.add, accumulated, dx) }
        if let (op, output) = activation { dx = try backend.unaryBackward(op, gradOutput: dx, value: output, valueIsOutput: true) }
        return dx
    }
}

/// What crossed between the host and a device with memory of its own, and how often the host
/// waited for it: the counters `xai-bench` prints and tests assert (a method that keeps its work on
/// the device moves its image in and its map out).
public struct TransferCounters: Sendable, Equatable, Codable {
    /// Bytes copied to the device: uploads and the compact descriptions kernels read (masks).
    public var bytesToDevice = 0
    /// Bytes copied back to the host.
    public var bytesFromDevice = 0
    /// Times the host blocked until the device caught up (blocking reads and writes, finishes).
    public var hostWaits = 0
    /// Kernels enqueued (a library call such as CLBlast's GEMM counts as one).
    public var kernelLaunches = 0

    public init() {}

    /// The counts since `earlier`.
    public func since(_ earlier: TransferCounters) -> TransferCounters {
        var d = TransferCounters()
        d.bytesToDevice = bytesToDevice - earlier.bytesToDevice
        d.bytesFromDevice = bytesFromDevice - earlier.bytesFromDevice
        d.hostWaits = hostWaits - earlier.hostWaits
        d.kernelLaunches = kernelLaunches - earlier.kernelLaunches
        return d
    }
}

/// A backend whose arrays live in device memory, apart from the host's, and counts what crosses.
/// The CPU backend computes in host memory and has nothing to count.
public protocol CountsTransfers {
    /// The counts since the backend opened.
    var transfers: TransferCounters { get }
}

/// One kernel's share of a profile: its launches and the device time between their starts and ends.
public struct KernelTime: Sendable, Codable, Equatable {
    public let name: String
    public let launches: Int
    public let seconds: Double

    public init(name: String, launches: Int, seconds: Double) {
        (self.name, self.launches, self.seconds) = (name, launches, seconds)
    }
}

/// A backend that can time each kernel on the device (OpenCL profiling events), for
/// `xai-bench models --profile` where host timers see only the enqueueing.
public protocol ProfilesKernels {
    /// Whether launches are being recorded (the backend was opened for profiling).
    var profilesKernels: Bool { get }
    /// Waits for the device, then returns the device time of every launch since the last call,
    /// summed by kernel, longest first.
    func takeKernelProfile() throws -> [KernelTime]
}
