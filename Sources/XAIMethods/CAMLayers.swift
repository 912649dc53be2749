import Foundation
import XAICore
import XAIGraph

/// How a CAM layer's values are laid out, and so how they become the `[N, C, h, w]` maps the CAM
/// family weighs: pytorch-grad-cam's `reshape_transform`, inferred from the shapes.
public enum CAMLayout: Sendable, Hashable, CustomStringConvertible {
    /// `[N, C, h, w]`: a convolutional network's activations.
    case channelsFirst
    /// `[N, h, w, C]`: Swin's and ConvNeXt's channels-last blocks.
    case channelsLast
    /// `[N, T, C]` with `T = prefix + h * w`: a vision transformer's tokens, the class (and
    /// distillation or register) tokens first, then the patches row by row.
    case tokens(prefix: Int, height: Int, width: Int)

    public var description: String {
        switch self {
        case .channelsFirst: return "[N, C, h, w]"
        case .channelsLast: return "[N, h, w, C]"
        case .tokens(let p, let h, let w): return "[N, \(p) + \(h)x\(w) tokens, C]"
        }
    }
}

extension ExplainedModel {
    /// The largest number of leading tokens (class, distillation, registers) a token layer may have.
    static let maxPrefixTokens = 16

    /// The layout of a CAM layer, from its shape at batch 1 and the input's aspect ratio:
    /// - 4-D: channels last when the middle two extents have the input's aspect ratio and the last
    ///   two do not (Swin's `[N, 7, 7, 768]`), channels first otherwise;
    /// - 3-D `[N, T, C]`: tokens, `T` split into the fewest leading tokens (at most 16) and a grid
    ///   of the input's aspect ratio (197 = 1 + 14x14 for ViT-B/16 at 224x224).
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` naming the layer for any
    ///   other rank, or tokens that are no grid plus leading tokens.
    public func camLayout(_ layer: String) throws -> CAMLayout {
        let s = try summary()
        guard let shape = s.shapes[layer] else {
            throw XAIError.invalidArgument(parameter: "layer", value: layer, reason: "no activation of \(graph.name) has this name (`xai inspect` lists them)")
        }
        guard let input = s.shapes[inputName], input.rank == 4, input[2] > 0, input[3] > 0 else {
            throw XAIError.invalidArgument(parameter: "layer", value: layer, reason: "CAM layers need an image input [N, C, H, W]")
        }
        let (height, width) = (input[2], input[3])
        func aspect(_ h: Int, _ w: Int) -> Bool { h > 0 && w > 0 && h * width == w * height }
        switch shape.rank {
        case 4:
            return aspect(shape[1], shape[2]) && !aspect(shape[2], shape[3]) ? .channelsLast : .channelsFirst
        case 3:
            guard let grid = try tokenGrid(shape[1]) else {
                throw XAIError.invalidArgument(parameter: "layer", value: layer,
                                               reason: "is \(shape): \(shape[1]) tokens are no grid of the input's \(height)x\(width) aspect ratio after at most \(Self.maxPrefixTokens) class or register tokens")
            }
            return .tokens(prefix: grid.prefix, height: grid.height, width: grid.width)
        default:
            throw XAIError.invalidArgument(parameter: "layer", value: layer,
                                           reason: "is \(shape), not a 4-D activation [N, C, h, w] or [N, h, w, C], nor transformer tokens [N, T, C]")
        }
    }

    /// The layers a CAM method can use, in execution order: 4-D activations with more than one
    /// pixel, then (for transformers) token layers `[N, T, C]` whose tokens are a grid plus class
    /// tokens.
    public func camCandidates() throws -> [String] {
        let s = try summary()
        var tokens: [String] = []
        for node in graph.nodes {
            for out in node.outputs where !out.isEmpty {
                if let shape = s.shapes[out], shape.rank == 3, (try? tokenGrid(shape[1])) ?? nil != nil { tokens.append(out) }
            }
        }
        return s.spatialActivations + tokens
    }

    /// The channels of a CAM layer (the maps ScoreCAM runs one forward for).
    public func camChannels(_ layer: String) throws -> Int {
        let layout = try camLayout(layer)
        guard let shape = try summary().shapes[layer] else { return 0 }
        switch layout {
        case .channelsFirst: return shape[1]
        case .channelsLast: return shape[3]
        case .tokens: return shape[2]
        }
    }

    /// The share of a forward's FLOPs (convolutions and matrix products) in the layers after
    /// `layer` (``Executor/nodesAfter(_:)``): what each of Ablation-CAM's ablated copies costs, in
    /// forwards. A lower bound where shape arithmetic made before the layer sends Ablation-CAM
    /// through the whole model.
    public func shareOfForwardAfter(_ layer: String) throws -> Double {
        let s = try summary()
        guard s.flopsPerImage > 0 else { return 1 }
        let after = executor.nodesAfter(layer).nodes.reduce(0.0) { total, node in
            guard let out = node.outputs.first, let shape = s.shapes[out] else { return total }
            return total + node.op.flops(inputs: node.inputs.map { s.shapes[$0] }, output: shape)
        }
        return min(1, after / s.flopsPerImage)
    }

    /// `t` tokens as the fewest leading tokens (at most ``maxPrefixTokens``) and a grid of more than
    /// one patch with the input's aspect ratio; `nil` when there is none.
    public func tokenGrid(_ t: Int) throws -> (prefix: Int, height: Int, width: Int)? {
        guard let input = try summary().shapes[inputName], input.rank == 4, input[2] > 0, input[3] > 0, t > 1 else { return nil }
        for prefix in 0...min(Self.maxPrefixTokens, t - 2) {
            let n = t - prefix
            for h in 1...n where n % h == 0 && h * input[3] == (n / h) * input[2] {
                return (prefix, h, n / h)
            }
        }
        return nil
    }

    /// A CAM layer's values (or their gradients) as `[N, C, h, w]`: tokens without the leading ones,
    /// laid on their grid, channels first.
    public func spatialView(_ a: DeviceArray, _ layout: CAMLayout) throws -> DeviceArray {
        switch layout {
        case .channelsFirst:
            return a
        case .channelsLast:
            return try backend.permute(a, [0, 3, 1, 2])
        case .tokens(let prefix, let h, let w):
            let (n, t, c) = (a.shape[0], a.shape[1], a.shape[2])
            let patches = prefix == 0 ? a : try backend.slice(a, starts: [0, prefix, 0], sizes: [n, t - prefix, c])
            return try backend.permute(try patches.reshaped([n, h, w, c]), [0, 3, 1, 2])
        }
    }

    /// The default CAM layer of a transformer: the output of the normalisation that opens the block
    /// of the last attention Softmax (a Softmax fed by a matrix product, not the classifier's), when
    /// that output is a token or channels-last layer; `nil` for models without attention.
    func transformerCAMLayer() throws -> String? {
        guard let attention = attentionSoftmaxes().last else { return nil }
        for node in graph.nodes[..<attention].reversed() {
            guard case .layerNorm = node.op, let out = node.outputs.first else { continue }
            if let layout = try? camLayout(out), layout != .channelsFirst { return out }
            return nil
        }
        return nil
    }

    /// Positions of the Softmax nodes over attention scores: fed (through scaling, masking and
    /// reshapes) by a product of two activations.
    public func attentionSoftmaxes() -> [Int] {
        let producers = graph.producers
        var result: [Int] = []
        for (i, node) in graph.nodes.enumerated() {
            guard case .softmax = node.op, var value = node.inputs.first else { continue }
            var steps = 0
            while let p = producers[value], steps < 8 {
                let n = graph.nodes[p]
                if case .matMul = n.op, n.inputs.count == 2, n.inputs.allSatisfy({ graph.initializers[$0] == nil }) {
                    result.append(i)
                    break
                }
                guard n.op.isView || { if case .binary = n.op { return true }; return false }(), let first = n.inputs.first(where: { graph.initializers[$0] == nil }) else { break }
                value = first
                steps += 1
            }
        }
        return result
    }
}
