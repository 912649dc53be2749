import Foundation
import XAICore
import XAIGraph

/// Meaningful Perturbation (Fong and Vedaldi, the deletion game): a low-resolution mask `m` in
/// [0, 1], bilinearly upsampled to `M`, blends the image with a blurred copy,
/// `x~ = x * M + blur(x) * (1 - M)`, and is optimised with Adam to lower the target's score while
/// deleting as little and as smoothly as possible:
/// `loss = l1 * mean(1 - m) + tv * mean(|grad m|^beta) + score(x~)`.
/// Each step is one forward and one backward to the input (about 2 forward-equivalents); the
/// images of a batch are optimised together. The map is the deletion `1 - M` at input resolution;
/// `raw` is the low-resolution mask `m` itself.
public struct MeaningfulPerturbation: ModelMethod {
    /// The optimisation step counts it takes.
    public static let iterationRange = 1...1_000_000

    public let name = "mp"
    public let model: ExplainedModel
    /// Adam steps (default 300).
    public var iterations: Int
    public var learningRate: Double
    /// Side of the low-resolution mask (default 28).
    public var maskSize: Int
    /// Weight of the deleted area `mean(1 - m)` (default 0.05).
    public var l1Coefficient: Double
    /// Weight of the total variation `mean(|m(i+1) - m(i)|^beta)` over both axes (default 0.2).
    public var tvCoefficient: Double
    /// Exponent of the total variation (default 3).
    public var tvBeta: Double
    /// Standard deviation of the blur that replaces deleted pixels, in pixels (default 10).
    public var blurSigma: Float
    /// Score being lowered: the softmax probability (the paper's) or the logit.
    public var output: ScoreOutput

    /// - Parameters:
    ///   - model: the model to explain.
    ///   - iterations: Adam steps (1 to 1,000,000).
    ///   - learningRate: Adam's step size (positive).
    ///   - maskSize: side of the low-resolution mask (2 to 4096).
    ///   - l1Coefficient: weight of the deleted area.
    ///   - tvCoefficient: weight of the mask's total variation.
    ///   - tvBeta: exponent of the total variation.
    ///   - blurSigma: standard deviation of the blur deleted pixels are replaced by.
    ///   - output: the score lowered (probability by default).
    public init(model: ExplainedModel, iterations: Int = 300, learningRate: Double = 0.1, maskSize: Int = 28, l1Coefficient: Double = 0.05,
                tvCoefficient: Double = 0.2, tvBeta: Double = 3, blurSigma: Float = 10, output: ScoreOutput = .probability) {
        self.model = model
        self.iterations = iterations
        self.learningRate = learningRate
        self.maskSize = maskSize
        self.l1Coefficient = l1Coefficient
        self.tvCoefficient = tvCoefficient
        self.tvBeta = tvBeta
        self.blurSigma = blurSigma
        self.output = output
    }

    /// The images, their blurred copies and targets, ready for ``objective(_:)``.
    struct Problem {
        let images: DeviceArray, blurred: DeviceArray, difference: DeviceArray
        let targets: [Int]
        let n: Int, height: Int, width: Int
        /// The targets' one-hot rows `[N, classes]`, made once where the class count is known.
        let picker: DeviceArray?
    }

    /// - Parameter classes: the model's outputs, when known: the targets' one-hot rows are then
    ///   made once instead of at every step.
    func problem(_ input: Tensor, targets: [Int], classes: Int? = nil) throws -> Problem {
        let be = model.backend
        let images = try be.upload(input)
        let blurred = try be.upload(try gaussianBlur(input, sigma: blurSigma))
        let n = input.shape[0]
        return Problem(images: images, blurred: blurred, difference: try be.binary(.sub, images, blurred), targets: targets,
                       n: n, height: input.shape[2], width: input.shape[3],
                       picker: try classes.map { try model.seed([n, $0], targets: targets) })
    }

    /// The loss of each image and its gradient with respect to the masks `[N, s, s]` (flattened).
    /// The backward's seed is made on the device from the logits there, so a step moves the mask
    /// over and its gradient back and nothing else; the score (and with it the loss) is read only
    /// when `readingScore` asks for it, `nil` otherwise (the Adam steps need only the gradient).
    func objective(_ p: Problem, masks: [Double], readingScore: Bool = true) throws -> (loss: [Double]?, score: [Double]?, gradient: [Double]) {
        let be = model.backend
        let s = maskSize, cells = maskSize * maskSize
        let m = try be.upload(Tensor(unchecked: [p.n, 1, s, s], masks.map { Float($0) }))
        let up = try be.resizeBilinear(m, height: p.height, width: p.width, alignCorners: false)
        // x~ = blur + M * (x - blur)
        let blended = try be.binary(.add, p.blurred, try be.binary(.mul, up, p.difference))
        let pass = try model.executor.forward(blended, keep: [], forBackward: true)
        let y = try pass.output(model.outputName)
        let logits = try y.reshaped([p.n, y.shape.count / max(p.n, 1)])
        // The target's one-hot rows, E: the logit's seed, and the picker of each row's score.
        let picker: DeviceArray
        if let made = p.picker, made.shape == logits.shape { picker = made } else { picker = try model.seed(logits.shape, targets: p.targets) }
        let seed: DeviceArray, score: () throws -> DeviceArray
        switch output {
        case .logit:
            (seed, score) = (picker, { try be.reduce(.sum, try be.binary(.mul, logits, picker), axes: [1]) })
        case .probability:
            // d p_t / d z_j = p_t (delta_tj - p_j) = p_j (delta_tj - p_t): the softmax's backward
            // of the one-hot rows E, one launch in float32 on the device.
            let probabilities = try be.softmax(logits, axis: 1, log: false)
            (seed, score) = (try be.softmaxBackward(picker, output: probabilities, axis: 1, log: false),
                             { try be.reduce(.sum, try be.binary(.mul, probabilities, picker), axes: [1]) })
        }
        let g = try model.executor.backward(pass, seeds: [model.outputName: try seed.reshaped(y.shape)], wrt: [model.inputName])
        // d score / d M = sum over channels of g * (x - blur), then back through the upsampling.
        let gM = try be.reduce(.sum, try be.binary(.mul, try model.inputGradient(g), p.difference), axes: [1])
        let gm = try be.download(try be.resizeBilinearBackward(gM, inputShape: [p.n, 1, s, s], alignCorners: false)).scalars
        let scores = readingScore ? try be.download(try score()).scalars.map(Double.init) : nil
        var loss = scores, gradient = gm.map(Double.init)
        let beta = tvBeta
        for b in 0..<p.n {
            let o = b * cells
            var area = 0.0, tv = 0.0
            for i in 0..<cells {
                area += 1 - masks[o + i]
                gradient[o + i] -= l1Coefficient / Double(cells)
            }
            for y in 0..<s {
                for x in 0..<s {
                    for (dy, dx) in [(0, 1), (1, 0)] where y + dy < s && x + dx < s {
                        let a = o + y * s + x, c = o + (y + dy) * s + x + dx
                        let d = masks[c] - masks[a]
                        tv += pow(abs(d), beta)
                        let dd = beta * pow(abs(d), beta - 1) * (d < 0 ? -1 : 1) * tvCoefficient / Double(cells)
                        gradient[c] += dd
                        gradient[a] -= dd
                    }
                }
            }
            loss?[b] += l1Coefficient * area / Double(cells) + tvCoefficient * tv / Double(cells)
        }
        return (loss, scores, gradient)
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        guard Self.iterationRange.contains(iterations) else {
            throw XAIError.invalidArgument(parameter: "iterations", value: "\(iterations)",
                                           reason: "Meaningful Perturbation needs \(Self.iterationRange.lowerBound) to \(Self.iterationRange.upperBound) iterations")
        }
        guard maskSize >= 2, maskSize <= 4096 else {
            throw XAIError.invalidArgument(parameter: "maskSize", value: "\(maskSize)", reason: "must be between 2 and 4096")
        }
        for (name, v) in [("learningRate", learningRate), ("l1Coefficient", l1Coefficient), ("tvCoefficient", tvCoefficient), ("tvBeta", tvBeta)]
        where !(v.isFinite && v >= 0) || (name == "learningRate" && v == 0) {
            throw XAIError.invalidArgument(parameter: name, value: "\(v)", reason: name == "learningRate" ? "must be positive" : "must be a non-negative number")
        }
        let be = model.backend
        let (logits, targets) = try model.prepare(input, target: target)
        let p = try problem(input, targets: targets, classes: logits.shape.count / max(logits.shape[0], 1))
        let count = p.n * maskSize * maskSize
        // Start from the whole image kept; Adam on the mask, clamped to [0, 1] after each step.
        var masks = [Double](repeating: 1, count: count)
        var first = [Double](repeating: 0, count: count), second = [Double](repeating: 0, count: count)
        var initialScore: [Double] = []
        for step in 1...iterations {
            let (_, score, gradient) = try objective(p, masks: masks, readingScore: step == 1)
            if let score { initialScore = score }
            let (b1, b2) = (0.9, 0.999)
            for i in 0..<count {
                first[i] = b1 * first[i] + (1 - b1) * gradient[i]
                second[i] = b2 * second[i] + (1 - b2) * gradient[i] * gradient[i]
                let mHat = first[i] / (1 - pow(b1, Double(step))), vHat = second[i] / (1 - pow(b2, Double(step)))
                masks[i] = min(max(masks[i] - learningRate * mHat / (vHat.squareRoot() + 1e-8), 0), 1)
            }
        }
        let final = try objective(p, masks: masks)
        let s = maskSize
        let m = try be.upload(Tensor(unchecked: [p.n, 1, s, s], masks.map { Float($0) }))
        let up = try be.download(try be.resizeBilinear(m, height: p.height, width: p.width, alignCorners: false))
        let deletion = up.scalars.map { 1 - $0 }
        let plane = p.height * p.width
        let deleted = (0..<p.n).map { b in deletion[(b * plane)..<((b + 1) * plane)].reduce(0.0) { $0 + Double($1) } / Double(plane) }
        return Attribution(map: Tensor(unchecked: [p.n, p.height, p.width], deletion), raw: Tensor(unchecked: [p.n, s, s], masks.map { Float($0) }),
                           targets: targets, scores: ExplainedModel.scores(logits, targets),
                           diagnostics: ["initialScore": initialScore, "finalScore": final.score ?? [], "finalLoss": final.loss ?? [], "deletedFraction": deleted])
    }
}
