import Foundation
import XAICore
import XAIGraph
import XAIMethods

/// Input invariance (Kindermans et al. 2017, "The (Un)reliability of Saliency Methods"; Quantus's
/// `InputInvariance`): every input value is shifted by `shift`, and a second model that undoes the
/// shift in its first layer's bias (`b - shift * sum W`, per output channel) computes the same
/// function of the shifted input as the model of the original. A method is input invariant when it
/// explains the shifted input on the second model as it explained the image on the first: the
/// gradient is, Gradient x Input and a zero baseline are not. The score is 1 where every value of
/// the map is within `tolerance + 1e-5 |map'|` of the map (NumPy's `isclose`, Quantus's
/// `atol=1e-4`), else 0. Each image's curve holds the largest change of the map, its change
/// relative to the map (L2), and the largest change of the logits between the two models, which
/// only float rounding makes.
///
/// Quantus folds the shift into the bias alone, so where the first convolution pads with zeros
/// its border outputs differ between the two models; here the padding moves into a Pad node that
/// pads with `shift`, which makes the two models equal everywhere.
public struct InputInvariance: Sendable {
    public var shift: Float
    public var tolerance: Float

    public init(shift: Float = -1, tolerance: Float = 1e-4) {
        self.shift = shift
        self.tolerance = tolerance
    }

    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`shift`, `tolerance`).
    public func validate() throws {
        guard shift.isFinite, shift != 0 else {
            throw XAIError.invalidArgument(parameter: "shift", value: "\(shift)", reason: "must be a finite, non-zero shift of the input values")
        }
        guard tolerance.isFinite, tolerance >= 0 else {
            throw XAIError.invalidArgument(parameter: "tolerance", value: "\(tolerance)", reason: "must be a finite tolerance, 0 or more")
        }
    }

    /// `graph` with its first layers taking input shifted by `shift`: every node that reads the
    /// input must be a convolution with a constant weight; its bias becomes `b - shift * sum W`
    /// and its padding a Pad node filled with `shift`. `height` and `width` are the input's, for
    /// padding given as SAME.
    /// - Throws: ``XAIError/unsupported(op:reason:)`` naming a node that reads the input and is not
    ///   such a convolution.
    public func shiftedGraph(_ graph: Graph, height: Int, width: Int) throws -> Graph {
        guard let input = graph.inputs.first?.name else {
            throw XAIError.unsupported(op: "input_invariance", reason: "the model has no input")
        }
        var shifted = graph
        var added: [(position: Int, node: Node)] = []
        for (i, node) in graph.nodes.enumerated() where node.inputs.contains(input) {
            guard case .conv(var params, let activation, let autoPad) = node.op, node.inputs.first == input, node.inputs.count >= 2,
                  let weight = graph.initializers[node.inputs[1]], weight.shape.rank == 4, !node.inputs.dropFirst().contains(input) else {
                throw XAIError.unsupported(op: "input_invariance",
                                           reason: "node '\(node.name)' (\(node.op.name)) reads the input: the shift is undone in a first layer that is a convolution with a constant weight")
            }
            // b - shift * sum W over the kernel, per output channel.
            let perOutput = weight.shape.count / weight.shape[0]
            let bias = node.inputs.count > 2 && !node.inputs[2].isEmpty ? graph.initializers[node.inputs[2]] : nil
            guard node.inputs.count <= 2 || node.inputs[2].isEmpty || bias != nil else {
                throw XAIError.unsupported(op: "input_invariance", reason: "node '\(node.name)': its bias is computed, not a constant")
            }
            let newBias = (0..<weight.shape[0]).map { o -> Float in
                let sum = weight.scalars[(o * perOutput)..<((o + 1) * perOutput)].reduce(0.0) { $0 + Double($1) }
                return Float(Double(bias?.scalars[o] ?? 0) - Double(shift) * sum)
            }
            let biasName = node.name + "/input_invariance_bias"
            shifted.initializers[biasName] = Tensor(unchecked: [weight.shape[0]], newBias)
            // The padding, filled with the shift: a zero border would not be shifted input.
            var pads = (params.padTop, params.padLeft, params.padBottom, params.padRight)
            if autoPad != .explicit {
                let (kh, kw) = (weight.shape[2], weight.shape[3])
                let (top, bottom) = autoPad.pads(input: height, kernel: kh, stride: params.strideH, dilation: params.dilationH) ?? (0, 0)
                let (left, right) = autoPad.pads(input: width, kernel: kw, stride: params.strideW, dilation: params.dilationW) ?? (0, 0)
                pads = (top, left, bottom, right)
            }
            var inputs = node.inputs
            if inputs.count > 2 {
                inputs[2] = biasName
            } else {
                inputs.append(biasName)
            }
            if pads != (0, 0, 0, 0) {
                let padded = node.name + "/input_invariance_pad"
                shifted.initializers[padded + "_pads"] = Tensor(unchecked: [8], [0, 0, pads.0, pads.1, 0, 0, pads.2, pads.3].map(Float.init))
                shifted.initializers[padded + "_value"] = Tensor(unchecked: [], [shift])
                added.append((i, Node(name: padded, op: .pad, inputs: [input, padded + "_pads", padded + "_value"], outputs: [padded])))
                inputs[0] = padded
                (params.padTop, params.padLeft, params.padBottom, params.padRight) = (0, 0, 0, 0)
            }
            shifted.nodes[i] = Node(name: node.name, op: .conv(params, activation: activation, autoPad: .explicit), inputs: inputs, outputs: node.outputs)
        }
        for (position, node) in added.reversed() { shifted.nodes.insert(node, at: position) }
        return shifted
    }

    /// - Parameter explain: the map of one image `[1, C, H, W]` for a class, on the given model.
    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted,
                         explain: (ExplainedModel, Tensor, Int) throws -> Tensor) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "input_invariance")
        try validate()
        let (logits, targets) = try model.prepare(images, target: target)
        let shiftedModel = try ExplainedModel(graph: try shiftedGraph(model.graph, height: h, width: w), backend: model.backend)
        let classes = logits.shape.count / n
        var scores: [Double] = [], curves: [[Double]] = []
        for b in 0..<n {
            let image = try ExplainedModel.image(images, b)
            let moved = Tensor(unchecked: image.shape, image.scalars.map { $0 + shift })
            let again = try explain(shiftedModel, moved, targets[b])
            guard again.shape.count == h * w else {
                throw XAIError.shapeMismatch(op: "input_invariance", expected: "a map of \(h)x\(w)", got: [again.shape])
            }
            let map = mapValues(maps, b, pixels: h * w)
            var largest = 0.0, squares = 0.0, norm = 0.0, invariant = true
            for (a, c) in zip(map, again.scalars) {
                let (x, y) = (Double(a), Double(c))
                let d = abs(x - y)
                // NumPy's isclose(map, map', atol): |a - b| <= atol + rtol |b|, NaN never close.
                if !(d <= Double(tolerance) + 1e-5 * abs(y)) { invariant = false }
                largest = max(largest, d.isNaN ? .infinity : d)
                squares += d * d
                norm += x * x
            }
            let shiftedLogits = try shiftedModel.prepare(moved, target: .index(targets[b])).logits
            let logitChange = zip(logits.scalars[(b * classes)..<((b + 1) * classes)], shiftedLogits.scalars).map { Double(abs($0 - $1)) }.max() ?? 0
            scores.append(invariant ? 1 : 0)
            curves.append([largest, norm > 0 ? (squares / norm).squareRoot() : .nan, logitChange])
        }
        return MetricResult(metric: "input_invariance", direction: .higherIsBetter, scores: scores,
                            settings: ["shift": "\(shift)", "tolerance": "\(tolerance) absolute + 1e-5 relative (NumPy's isclose)",
                                       "shifted model": "first convolution's bias b - shift * sum W, its padding filled with the shift",
                                       "curve": "largest |map - map'|, ||map - map'|| / ||map||, largest logit change between the models"],
                            curves: curves)
    }
}
