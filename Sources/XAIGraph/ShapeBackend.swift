import XAICore

/// A backend that computes only shapes: running a graph on it is shape inference, through exactly
/// the code paths (and the operand checks) of a real run.
final class ShapeBackend: Backend {
    final class Empty: DeviceStorage {}
    let device = Device.cpu
    let name = "shapes"
    let memoryBudget = Int.max
    private let storage = Empty()
    let details = BackendDetails()

    /// Every primitive: computing a shape is never left to the host.
    func supports(_ primitive: Primitive) -> Bool { true }

    func array(_ s: Shape) -> DeviceArray { DeviceArray(shape: s, storage: storage) }

    func upload(_ tensor: Tensor) throws -> DeviceArray { array(tensor.shape) }
    func download(_ array: DeviceArray) throws -> Tensor {
        throw XAIError.unsupported(op: "shape inference", reason: "the graph reads activation values on the host")
    }
    func filled(_ shape: Shape, value: Float) throws -> DeviceArray { array(shape) }

    func gemm(_ a: DeviceArray, _ b: DeviceArray, plan: GemmPlan, alpha: Float, bias: DeviceArray?, activation: UnaryOp) throws -> DeviceArray {
        array(plan.outputShape)
    }
    func conv2d(_ x: DeviceArray, weight: DeviceArray, bias: DeviceArray?, residual: DeviceArray?, plan: ConvPlan,
                activation: UnaryOp) throws -> DeviceArray { array(plan.output) }
    func conv2dBackwardInput(_ gradOutput: DeviceArray, weight: DeviceArray, plan: ConvPlan) throws -> DeviceArray { array(plan.input) }
    func pool2d(_ x: DeviceArray, plan: PoolPlan) throws -> DeviceArray { array(plan.output) }
    func pool2dBackward(_ gradOutput: DeviceArray, input: DeviceArray, plan: PoolPlan) throws -> DeviceArray { array(plan.input) }
    func unary(_ x: DeviceArray, plan: UnaryPlan) throws -> DeviceArray { x }
    func unaryBackward(_ gradOutput: DeviceArray, value: DeviceArray, plan: UnaryBackwardPlan) throws -> DeviceArray { value }
    func binary(_ op: BinaryOp, _ a: DeviceArray, _ b: DeviceArray, plan: BroadcastPlan) throws -> DeviceArray { array(plan.outputShape) }
    func reduce(_ op: ReduceOp, _ x: DeviceArray, plan: ReducePlan) throws -> DeviceArray { array(plan.outputShape) }
    func reduceBackward(_ op: ReduceOp, gradOutput: DeviceArray, input: DeviceArray, plan: ReducePlan) throws -> DeviceArray { array(plan.inputShape) }
    func softmax(_ x: DeviceArray, plan: SoftmaxPlan) throws -> DeviceArray { x }
    func layerNorm(_ x: DeviceArray, scale: DeviceArray, bias: DeviceArray?, plan: LayerNormPlan) throws -> DeviceArray { x }
    func layerNormBackward(_ gradOutput: DeviceArray, input: DeviceArray, scale: DeviceArray, plan: LayerNormPlan) throws -> DeviceArray { input }
    func softmaxBackward(_ gradOutput: DeviceArray, output: DeviceArray, plan: SoftmaxPlan) throws -> DeviceArray { output }
    func resizeBilinear(_ x: DeviceArray, plan: ResizePlan) throws -> DeviceArray { array(plan.output) }
    func resizeBilinearBackward(_ gradOutput: DeviceArray, plan: ResizePlan) throws -> DeviceArray { array(plan.input) }
    func masks(plan: MaskPlan) throws -> DeviceArray { array(plan.outputShape) }
    func composite(image: DeviceArray, baseline: DeviceArray, plan: CompositePlan) throws -> DeviceArray { array(plan.outputShape) }
    func move(_ inputs: [DeviceArray], plan: MovementPlan) throws -> DeviceArray { array(plan.outputShape) }
}
