import Foundation
import XAICore
import XAIGraph

/// The attention maps of a vision transformer combined across blocks: how much each patch token
/// flows into the class token by the last block.
public enum RolloutVariant: String, Sendable, CaseIterable {
    /// Attention rollout (Abnar & Zuidema, ACL 2020): per block the heads' mean attention with the
    /// residual connection, `(A + I) / 2` renormalised per row; the blocks' product from the first
    /// to the last. Class-agnostic: the same map for every target.
    case rollout
    /// Gradient-weighted rollout (Chefer, Gur & Wolf, "Generic Attention-model Explainability",
    /// ICCV 2021): `R = I`, and per block `R += mean_heads(relu(dA * A)) R`, with `dA` the gradient
    /// of the target logit with respect to the attention probabilities `A`. Class-specific.
    case gradientWeighted = "gradrollout"
    /// Transformer attribution (Chefer, Gur & Wolf, "Transformer Interpretability Beyond Attention
    /// Visualization", CVPR 2021): `R = I`, and per block `R += mean_heads(relu(dA * R_A)) R`, with
    /// `R_A` the LRP relevance of the target (one at its logit) reaching the attention
    /// probabilities under the authors' rules (``Executor/transformerAttributionRules(wrt:)``).
    /// One forward, one gradient backward and one LRP backward to the attention.
    case transformerAttribution = "transformer-attribution"
}

/// Rollout methods over the attention Softmax of every block, found in the graph (a Softmax over a
/// product of two activations). The map is the class token's row over the patch tokens, laid on the
/// patch grid and upsampled to the input; `raw` is that grid `[N, h, w]`. The products run on the
/// host in float64: `T^3` per block for `T` tokens (197 for ViT-B/16), small beside the forward.
public struct AttentionRollout: ModelMethod {
    public var name: String { variant.rawValue }
    public let model: ExplainedModel
    public var variant: RolloutVariant

    public init(model: ExplainedModel, variant: RolloutVariant = .rollout) {
        self.model = model
        self.variant = variant
    }

    /// Throws when the model has no global attention over a class token and a patch grid.
    public func validate() throws { _ = try attentionValues() }

    /// The LRP denominators' stabiliser of Chefer et al.'s code (`safe_divide`'s 1e-9).
    static let cheferStabilizer: Float = 1e-9

    /// The attention probabilities' values, in block order, and the token grid they share.
    /// - Throws: ``XAIError/unsupported(op:reason:)`` naming the model when it has no global
    ///   attention over a class token and a patch grid (a CNN; Swin's windowed attention).
    func attentionValues() throws -> (names: [String], tokens: Int, prefix: Int, height: Int, width: Int) {
        let positions = model.attentionSoftmaxes()
        guard !positions.isEmpty else {
            throw XAIError.unsupported(op: name, reason: "\(model.graph.name) has no attention (no Softmax over a product of two activations); rollout explains transformers")
        }
        let shapes = try model.summary().shapes
        let names = positions.compactMap { model.graph.nodes[$0].outputs.first }
        var tokens: Int?
        for n in names {
            guard let s = shapes[n], s.rank >= 3, s[s.rank - 1] == s[s.rank - 2], s[s.rank - 1] > 1 else {
                throw XAIError.unsupported(op: name, reason: "attention '\(n)' is \(shapes[n].map { "\($0)" } ?? "unknown"), not square [.., T, T] probabilities")
            }
            let t = s[s.rank - 1]
            if let tokens, tokens != t {
                throw XAIError.unsupported(op: name, reason: "attention blocks over \(tokens) and \(t) tokens: rollout needs every block to attend over the same tokens (windowed attention, as Swin's, is not global)")
            }
            tokens = t
        }
        let t = tokens ?? 0
        guard let grid = try model.tokenGrid(t), grid.prefix >= 1 else {
            throw XAIError.unsupported(op: name, reason: "\(t) attention tokens are no class token followed by a patch grid of the input's aspect ratio")
        }
        return (names, t, grid.prefix, grid.height, grid.width)
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        let be = model.backend
        try model.validate(input)
        let (names, t, prefix, h, w) = try attentionValues()
        let n = input.shape[0]
        let keep = Set(names)
        let logits: Tensor, targets: [Int], kept: [String: DeviceArray], grads: [String: DeviceArray]
        switch variant {
        case .rollout:
            let pass = try model.executor.forward(try be.upload(input), keep: keep)
            logits = try be.download(try pass.output(model.outputName))
            try logits.requireFinite("logits of the input images")
            targets = try model.resolve(target, logits: logits)
            (kept, grads) = (pass.kept, [:])
        case .gradientWeighted:
            let r = try model.gradients(try be.upload(input), target: target, wrt: keep, keep: keep)
            (logits, targets, kept, grads) = (r.logits, r.targets, r.kept, r.grads)
        case .transformerAttribution:
            // The relevance at the attention stands in for the attention in the weighting.
            let rules = LRPRules(byNode: model.executor.transformerAttributionRules(wrt: [model.inputName]), stabilizer: Self.cheferStabilizer)
            let r = try model.backwards(try be.upload(input), target: target, [(keep, .gradient), (keep, PropagationRules(lrp: rules))])
            (logits, targets, grads) = (r.logits, r.targets, r.grads[0])
            kept = r.grads[1]
        }
        // Each block's matrix per image, in float64: rollout's (A + I) / 2 with rows renormalised,
        // or I + mean_heads(relu(dA * A)) (R_A for A in transformer attribution); R is their
        // product from the last block to the first.
        var blocks = [[[Double]]](repeating: [], count: n)
        for name in names {
            guard let a = kept[name] else { throw XAIError.invalidArgument(parameter: "layer", value: name, reason: "was not kept") }
            let probabilities = try be.download(a).scalars
            let heads = probabilities.count / max(n * t * t, 1)
            guard heads >= 1, heads * n * t * t == probabilities.count else {
                throw XAIError.shapeMismatch(op: self.name, expected: "attention of \(n) images x heads x \(t) x \(t)", got: [a.shape])
            }
            var gradients: [Float]?
            if variant != .rollout {
                guard let g = grads[name] else {
                    throw XAIError.invalidArgument(parameter: "layer", value: name, reason: "no gradient reached the attention")
                }
                gradients = try be.download(g).scalars
            }
            for b in 0..<n {
                var block = [Double](repeating: 0, count: t * t)
                for head in 0..<heads {
                    let base = (b * heads + head) * t * t
                    if let gradients {
                        for i in 0..<(t * t) { block[i] += max(Double(gradients[base + i]) * Double(probabilities[base + i]), 0) }
                    } else {
                        for i in 0..<(t * t) { block[i] += Double(probabilities[base + i]) }
                    }
                }
                for i in 0..<(t * t) { block[i] /= Double(heads) }
                for r in 0..<t {
                    block[r * t + r] += 1
                    if variant == .rollout {
                        // (A + I) / 2 renormalised per row is (A + I) over its row sum.
                        let sum = (0..<t).reduce(0.0) { $0 + block[r * t + $1] }
                        for c in 0..<t { block[r * t + c] /= sum == 0 ? 1 : sum }
                    }
                }
                blocks[b].append(block)
            }
        }
        // Only the class token's row of R is needed: e_0 M_L ... M_1, one vector-matrix product a block.
        var rows = [[Double]]()
        for b in 0..<n {
            var v = [Double](repeating: 0, count: t)
            v[0] = 1
            for m in blocks[b].reversed() {
                var next = [Double](repeating: 0, count: t)
                for i in 0..<t where v[i] != 0 {
                    for j in 0..<t { next[j] += v[i] * m[i * t + j] }
                }
                v = next
            }
            rows.append(v)
        }
        // The class token's row over the patches, on the grid.
        var cam = [Float]()
        cam.reserveCapacity(n * h * w)
        for b in 0..<n {
            cam += (prefix..<t).map { Float(rows[b][$0]) }
        }
        return try model.camAttribution(try be.upload(Tensor(unchecked: [n, 1, h, w], cam)), input: input.shape, logits: logits, targets: targets)
    }
}
