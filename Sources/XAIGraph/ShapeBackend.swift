import XAICore

/// A backend that computes only shapes: running a graph on it is shape inference, through exactly
/// the code paths of a real run.
final class ShapeBackend: Backend, @unchecked Sendable {
    final class Empty: DeviceStorage, @unchecked Sendable {}
    let device = Device.cpu
    let name = "shapes"
    let memoryBudget = Int.max
    private let storage = Empty()

    func array(_ s: Shape) -> DeviceArray { DeviceArray(shape: s, storage: storage) }

    func upload(_ tensor: Tensor) throws -> DeviceArray { array(tensor.shape) }
    func download(_ array: DeviceArray) throws -> Tensor {
        throw XAIError.unsupported(op: "shape inference", reason: "the graph reads activation values on the host")
    }
    func filled(_ shape: Shape, value: Float) throws -> DeviceArray { array(shape) }

    func gemm(_ a: DeviceArray, _ b: DeviceArray, transposeA: Bool, transposeB: Bool, alpha: Float, bias: DeviceArray?, activation: UnaryOp) throws -> DeviceArray {
        let (m, n, _) = try Check.gemm(a.shape, b.shape, transposeA: transposeA, transposeB: transposeB, bias: bias?.shape)
        return array([m, n])
    }
    func conv2d(_ x: DeviceArray, weight: DeviceArray, bias: DeviceArray?, params: Conv2DParams, activation: UnaryOp) throws -> DeviceArray {
        array(try params.outputShape(input: x.shape, weight: weight.shape))
    }
    func conv2dBackwardInput(_ gradOutput: DeviceArray, weight: DeviceArray, params: Conv2DParams, inputShape: Shape) throws -> DeviceArray { array(inputShape) }
    func pool2d(_ x: DeviceArray, params: Pool2DParams) throws -> DeviceArray { array(try params.outputShape(input: x.shape)) }
    func pool2dBackward(_ gradOutput: DeviceArray, input: DeviceArray, params: Pool2DParams) throws -> DeviceArray { array(input.shape) }
    func unary(_ op: UnaryOp, _ x: DeviceArray) throws -> DeviceArray { x }
    func unaryBackward(_ op: UnaryOp, gradOutput: DeviceArray, value: DeviceArray, valueIsOutput: Bool) throws -> DeviceArray { value }
    func binary(_ op: BinaryOp, _ a: DeviceArray, _ b: DeviceArray) throws -> DeviceArray {
        array(try BroadcastPlan(a.shape, b.shape, op: "binary(\(op))").outputShape)
    }
    func reduce(_ op: ReduceOp, _ x: DeviceArray, axes: [Int]) throws -> DeviceArray {
        array(try ReducePlan(input: x.shape, axes: axes, op: "reduce").outputShape)
    }
    func reduceBackward(_ op: ReduceOp, gradOutput: DeviceArray, input: DeviceArray, axes: [Int]) throws -> DeviceArray { array(input.shape) }
    func softmax(_ x: DeviceArray, axis: Int, log: Bool) throws -> DeviceArray { x }
    func softmaxBackward(_ gradOutput: DeviceArray, output: DeviceArray, axis: Int, log: Bool) throws -> DeviceArray { output }
    func resizeBilinear(_ x: DeviceArray, height: Int, width: Int, alignCorners: Bool) throws -> DeviceArray {
        array([x.shape[0], x.shape[1], height, width])
    }
    func resizeBilinearBackward(_ gradOutput: DeviceArray, inputShape: Shape, alignCorners: Bool) throws -> DeviceArray { array(inputShape) }
    func masks(_ spec: MaskSpec, height: Int, width: Int) throws -> DeviceArray { array([spec.sampleCount, 1, height, width]) }
    func composite(image: DeviceArray, baseline: DeviceArray, masks spec: MaskSpec) throws -> DeviceArray {
        array(Shape([spec.sampleCount] + image.shape.dims.dropFirst()))
    }
    func permute(_ x: DeviceArray, _ perm: [Int]) throws -> DeviceArray {
        guard perm.count == x.shape.rank, Set(perm) == Set(0..<x.shape.rank) else {
            throw XAIError.invalidArgument(op: "permute", message: "\(perm) is not a permutation of the axes of \(x.shape)")
        }
        return array(Shape(perm.map { x.shape[$0] }))
    }
    func slice(_ x: DeviceArray, starts: [Int], sizes: [Int]) throws -> DeviceArray { array(Shape(sizes)) }
    func pad(_ x: DeviceArray, before: [Int], after: [Int], value: Float) throws -> DeviceArray {
        array(Shape((0..<x.shape.rank).map { x.shape[$0] + before[$0] + after[$0] }))
    }
    func concat(_ xs: [DeviceArray], axis: Int) throws -> DeviceArray {
        guard let first = xs.first, let a = first.shape.normalizedAxis(axis) else { throw XAIError.invalidArgument(op: "concat", message: "axis \(axis)") }
        var dims = first.shape.dims
        dims[a] = xs.reduce(0) { $0 + $1.shape[a] }
        return array(Shape(dims))
    }
}

/// What `xai inspect` reports about a graph, from one shape-inference run at batch 1.
public struct GraphSummary: Sendable {
    /// Shape of every value, by name.
    public let shapes: [String: Shape]
    /// Multiply-adds x 2 of convolutions and matrix products, for one image.
    public let flopsPerImage: Double
    /// 4-D activations a CAM method can use, in execution order.
    public let camCandidates: [String]
    /// The default CAM layer: the last 4-D activation before global pooling.
    public let defaultCAMLayer: String?
}

extension Graph {
    /// Infers every value's shape for one image and counts FLOPs.
    public func summary() throws -> GraphSummary {
        guard let input = imageInput else { throw XAIError.invalidArgument(op: "summary", message: "graph \(name) has no input") }
        let backend = ShapeBackend()
        let executor = Executor(graph: self, backend: backend)
        let pass = try executor.forward(backend.array(try input.shape(batch: 1)), forBackward: true)
        var shapes: [String: Shape] = [:]
        for (k, v) in pass.values { shapes[k] = v.shape }
        for (k, t) in initializers { shapes[k] = t.shape }
        var flops = 0.0
        var candidates: [String] = []
        var defaultLayer: String?
        for n in nodes {
            guard let out = n.outputs.first, let os = shapes[out] else { continue }
            switch n.op {
            case .conv:
                if let ws = shapes[n.inputs[1]] { flops += 2 * Double(os.count) * Double(ws.count / ws[0]) }
            case .gemm(let ta, _, _, _, _):
                if let a = shapes[n.inputs[0]] { flops += 2 * Double(os.count) * Double(ta ? a[0] : a[1]) }
            case .matMul:
                if let a = shapes[n.inputs[0]] { flops += 2 * Double(os.count) * Double(a[a.rank - 1]) }
            case .globalAveragePool:
                defaultLayer = n.inputs[0]
            case .reduceMean(let axes, _):
                if let a = axes, Set(a.map { $0 < 0 ? $0 + 4 : $0 }) == [2, 3] { defaultLayer = n.inputs[0] }
            case .flatten, .reshape:
                if defaultLayer == nil, let s = shapes[n.inputs[0]], s.rank == 4 { defaultLayer = n.inputs[0] }
            default: break
            }
            if os.rank == 4, os[2] * os[3] > 1 { candidates.append(out) }
        }
        return GraphSummary(shapes: shapes, flopsPerImage: flops, camCandidates: candidates, defaultCAMLayer: defaultLayer ?? candidates.last)
    }
}
