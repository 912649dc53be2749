import XAICore

/// What `xai inspect` reports about a graph, from one shape-inference run at batch 1.
public struct GraphSummary: Sendable {
    /// Shape of every value, by name.
    public let shapes: [String: Shape]
    /// Multiply-adds x 2 of convolutions and matrix products, for one image.
    public let flopsPerImage: Double
    /// 4-D activations with more than one pixel, in execution order: the layers a CAM method can use.
    public let spatialActivations: [String]
    /// The last 4-D activation before global pooling (or before the first flattening), the CAM
    /// methods' default layer.
    public let lastSpatialActivation: String?
}

extension Graph {
    /// Infers every value's shape for one image and counts FLOPs.
    /// - Throws: the first error shape inference meets (a shape mismatch in a node, an op reading
    ///   activation values on the host), wrapped with the node.
    public func summary() throws -> GraphSummary {
        guard let input = imageInput else {
            throw XAIError.invalidArgument(parameter: "graph", value: name, reason: "has no image input")
        }
        let backend = ShapeBackend()
        let executor = Executor(graph: self, backend: backend)
        let pass = try executor.forward(backend.array(try input.shape(batch: 1)), forBackward: true)
        var shapes: [String: Shape] = [:]
        for (k, v) in pass.values { shapes[k] = v.shape }
        for (k, t) in initializers { shapes[k] = t.shape }
        var flops = 0.0
        var spatial: [String] = []
        var beforePooling: String?
        for n in nodes {
            guard let out = n.outputs.first, let os = shapes[out] else { continue }
            flops += n.op.flops(inputs: n.inputs.map { shapes[$0] }, output: os)
            switch n.op {
            case .globalAveragePool:
                beforePooling = n.inputs.first
            case .reduce(.mean, let axes, _):
                if let a = axes, Set(a.map { $0 < 0 ? $0 + 4 : $0 }) == [2, 3] { beforePooling = n.inputs.first }
            case .flatten, .reshape:
                if beforePooling == nil, let x = n.inputs.first, let s = shapes[x], s.rank == 4 { beforePooling = x }
            default: break
            }
            if os.rank == 4, os[2] * os[3] > 1 { spatial.append(out) }
        }
        return GraphSummary(shapes: shapes, flopsPerImage: flops, spatialActivations: spatial,
                            lastSpatialActivation: beforePooling ?? spatial.last)
    }
}
