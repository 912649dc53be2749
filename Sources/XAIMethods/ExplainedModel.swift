import Foundation
import XAICore
import XAIGraph

/// A model ready to be explained: a graph on a backend, with what the methods share (checked
/// inputs, logits and targets, batched gradients, baselines, the CAM layer and its upsampling).
///
/// Safe to share between threads: the executor's weight cache and the summary cache are locked.
public final class ExplainedModel: Sendable {
    public let graph: Graph
    public let backend: any Backend
    public let executor: Executor
    /// The image input's name (the value gradients are taken with respect to).
    public let inputName: String
    /// The output whose logits are explained (the graph's first output).
    public let outputName: String
    private let cache = SummaryCache()
    private let unfused = OnceBuilt<Executor>()

    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` when the graph has no image
    ///   input or no output.
    public init(graph: Graph, backend: any Backend) throws {
        guard let input = graph.imageInput, let output = graph.outputs.first else {
            throw XAIError.invalidArgument(parameter: "model", value: graph.name, reason: "needs one image input and one output")
        }
        self.graph = graph
        self.backend = backend
        executor = Executor(graph: graph, backend: backend)
        inputName = input.name
        outputName = output.name
    }

    /// An executor on the graph with every activation its own node (``Graph/unfusingActivations()``),
    /// built once: DeepLIFT's rules read each activation's input and output.
    public func unfusedExecutor() -> Executor {
        unfused.value { Executor(graph: graph.unfusingActivations(), backend: backend) }
    }

    /// Shapes, FLOPs and spatial layers of the graph at batch 1 (computed once).
    public func summary() throws -> GraphSummary {
        try cache.summary { try graph.summary() }
    }

    /// Bytes of activations one image needs at the peak of a forward pass that is not kept for
    /// backward: the graph is walked in the executor's order, each value released on the
    /// schedule `Executor.forward` uses (``Graph/lastReads``). For ResNet-50 this is a few large activations, not the
    /// sum of all of them, so perturbation batches can be several times larger than backward ones.
    public func bytesPerImageForForward() throws -> Int {
        let shapes = try summary().shapes
        func bytes(_ name: String) -> Int { graph.initializers[name] == nil ? (shapes[name]?.count ?? 0) * 4 : 0 }
        var live = bytes(inputName), peak = live
        for (node, lastRead) in zip(graph.nodes, graph.lastReads) {
            for o in node.outputs where !o.isEmpty { live += bytes(o) }
            peak = max(peak, live)
            for name in lastRead where name != inputName { live -= bytes(name) }
        }
        return peak
    }

    /// Bytes of activations one image needs in a forward pass kept for backward, plus its gradients.
    public func bytesPerImageForBackward() throws -> Int {
        let s = try summary()
        let activations = s.shapes.filter { graph.initializers[$0.key] == nil }.values.reduce(0) { $0 + $1.count }
        return activations * 4 * 2
    }

    /// The batch the graph's image input fixes, `nil` where it is dynamic: 1 for a model exported
    /// without a dynamic batch axis (`torch.onnx.export`'s default), whose reshapes were traced at
    /// that batch too.
    public var fixedBatch: Int? { graph.imageInput?.shape.first ?? nil }

    /// Items of `bytesPerItem` each that fit a quarter of the backend's memory budget (at least 1,
    /// at most `cap`), or `requested` after checking it: a batch that cannot fit the budget is
    /// refused before anything is allocated. A graph that fixes its batch at 1 gets 1, whatever
    /// was asked: no result depends on the batch.
    /// - Parameter parameter: the knob's name for the error (`internalBatchSize`).
    public func batchSize(requested: Int?, bytesPerItem: Int, cap: Int, parameter: String) throws -> Int {
        if let b = requested {
            guard b >= 1 else { throw XAIError.invalidArgument(parameter: parameter, value: "\(b)", reason: "must be positive") }
        }
        if fixedBatch == 1 { return 1 }
        if let b = requested {
            let (bytes, overflow) = b.multipliedReportingOverflow(by: max(bytesPerItem, 1))
            guard !overflow, bytes <= backend.memoryBudget else {
                throw XAIError.tooLarge(what: "a batch of \(b) (\(parameter))", bytes: overflow ? Int.max : bytes, limit: backend.memoryBudget)
            }
            return min(b, max(cap, 1))
        }
        return max(1, min(cap, backend.memoryBudget / 4 / max(bytesPerItem, 1)))
    }

    // MARK: Inputs, logits and targets

    /// Reports `done` of `total` to `progress` once the work queued so far has finished (an
    /// asynchronous device is waited for: the count is of finished work). Without a callback,
    /// nothing: the device is not waited for.
    func report(_ progress: PerturbationProgress?, _ done: Int, of total: Int) throws {
        guard let progress else { return }
        try backend.synchronize()
        try progress(done, total)
    }

    /// Runs `body` on consecutive ranges of `0..<total` of at most `batch` items each. When the
    /// device runs out of memory in a batch, the batch is halved and run again (down to one item)
    /// and the smaller size kept for the rest: a budget that overestimated the device (another
    /// process holding GPU memory) costs time, not the explanation. `body` must leave no trace of a
    /// batch that threw (the callers fold a batch's result into their sums only once it is whole).
    public func inBatches(_ total: Int, of batch: Int, _ body: (Range<Int>) throws -> Void) throws {
        var size = max(1, batch), start = 0
        while start < total {
            let range = start..<min(total, start + size)
            do {
                try body(range)
            } catch XAIError.outOfMemory where range.count > 1 {
                size = (range.count + 1) / 2
                continue
            }
            start = range.upperBound
        }
    }

    /// Checks an input batch: `[N, C, H, W]` with N >= 1 and finite values.
    /// - Throws: ``XAIError/shapeMismatch(op:expected:got:)``, ``XAIError/nonFinite(what:count:)``.
    public func validate(_ input: Tensor) throws {
        guard input.shape.rank == 4, input.shape[0] >= 1 else {
            throw XAIError.shapeMismatch(op: "attribute", expected: "an image batch [N, C, H, W] with N >= 1", got: [input.shape])
        }
        try input.requireFinite("input images")
    }

    /// The logits `[N, classes]` of a batch.
    public func logits(_ x: DeviceArray) throws -> Tensor {
        try backend.download(try outputs(x))
    }

    /// The logits of a batch, left on the device.
    /// A graph that fixes its batch at 1 runs a batch one image at a time.
    public func outputs(_ x: DeviceArray) throws -> DeviceArray {
        guard fixedBatch == 1, x.shape.rank == 4, x.shape[0] > 1 else { return try executor.forward(x).output(outputName) }
        return try backend.concat(try (0..<x.shape[0]).map { b in try executor.forward(try image(x, b)).output(outputName) }, axis: 0)
    }

    /// The first step of every method: the input checked, its logits, and the class each image is
    /// explained for. Non-finite logits are an error (the explanation would be meaningless).
    public func prepare(_ input: Tensor, target: Target) throws -> (logits: Tensor, targets: [Int]) {
        let r = try prepareOnDevice(input, target: target)
        return (r.logits, r.targets)
    }

    /// ``prepare(_:target:)`` that also returns the batch on the device, for the methods that
    /// keep working on it there (each image a slice, nothing uploaded again).
    public func prepareOnDevice(_ input: Tensor, target: Target) throws -> (x: DeviceArray, logits: Tensor, targets: [Int]) {
        try validate(input)
        let x = try backend.upload(input)
        let logits = try self.logits(x)
        try logits.requireFinite("logits of the input images")
        return (x, logits, try resolve(target, logits: logits))
    }

    /// Image `b` of a batch on the device, `[1, ...]` (a slice: nothing crosses to the host).
    public func image(_ x: DeviceArray, _ b: Int) throws -> DeviceArray {
        let item = Array(x.shape.dims.dropFirst())
        return try backend.slice(x, starts: [b] + [Int](repeating: 0, count: item.count), sizes: [1] + item)
    }

    /// The class of each image for `target`, given the batch's logits.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`target`) for a class outside
    ///   the outputs or a per-image list of the wrong length.
    public func resolve(_ target: Target, logits: Tensor) throws -> [Int] {
        let n = logits.shape[0], classes = logits.shape.count / max(n, 1)
        let targets: [Int]
        switch target {
        case .predicted:
            targets = (0..<n).map { b in
                let row = logits.scalars[(b * classes)..<((b + 1) * classes)]
                return (row.indices.max { row[$0] < row[$1] } ?? b * classes) - b * classes
            }
        case .index(let i): targets = [Int](repeating: i, count: n)
        case .perImage(let list):
            guard list.count == n else {
                throw XAIError.invalidArgument(parameter: "target", value: "\(list)", reason: "\(list.count) classes for a batch of \(n) images")
            }
            targets = list
        }
        for t in targets where !(0..<classes).contains(t) {
            throw XAIError.invalidArgument(parameter: "target", value: "\(t)", reason: "outside the model's \(classes) outputs")
        }
        return targets
    }

    /// The logit of each image's target.
    public static func scores(_ logits: Tensor, _ targets: [Int]) -> [Float] {
        let classes = logits.shape.count / max(logits.shape[0], 1)
        return targets.enumerated().map { logits.scalars[$0.offset * classes + $0.element] }
    }

    /// Softmax of one row of logits, in float64 (the one host softmax of the engine).
    public static func probabilities(_ row: some Collection<Float>) -> [Double] {
        let top = Double(row.max() ?? 0)
        let e = row.map { Foundation.exp(Double($0) - top) }
        let total = e.reduce(0, +)
        return e.map { $0 / total }
    }

    // MARK: Gradients

    /// A seed selecting logit `targets[b]` of each row. One class for every row (each image's
    /// batch of path points, noisy copies or masks) is built on the device, with nothing uploaded.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`target`) for a class
    ///   outside the rows or a list of the wrong length.
    func seed(_ shape: Shape, targets: [Int]) throws -> DeviceArray {
        let rows = shape.rank == 0 ? 1 : shape[0], classes = shape.count / max(rows, 1)
        guard targets.count == rows else {
            throw XAIError.invalidArgument(parameter: "target", value: "\(targets)", reason: "\(targets.count) classes for \(rows) rows")
        }
        if let bad = targets.first(where: { !(0..<classes).contains($0) }) { throw XAIError.invalidArgument(parameter: "target", value: "\(bad)", reason: "outside the model's \(classes) outputs") }
        if let t = targets.first, targets.allSatisfy({ $0 == t }) {
            let column = try backend.pad(try backend.filled([rows, 1], value: 1), before: [0, t], after: [0, classes - 1 - t], value: 0)
            return try column.reshaped(shape)
        }
        var t = Tensor(shape: shape)
        t.withUnsafeMutableBufferPointer { p in
            for (b, c) in targets.enumerated() { p[b * classes + c] = 1 }
        }
        return try backend.upload(t)
    }

    /// The gradient of `sum_b logit[b, targets[b]]` with respect to the input, left on the device:
    /// nothing crosses to the host (the logits are not read), so a method that sums many such
    /// gradients (SmoothGrad) downloads only its result.
    public func inputGradient(_ x: DeviceArray, targets: [Int], rules: PropagationRules = .gradient) throws -> DeviceArray {
        let pass = try executor.forward(x, keep: [], forBackward: true, backwardTo: [inputName])
        let y = try pass.output(outputName)
        return try inputGradient(try executor.backward(pass, seeds: [outputName: try seed(y.shape, targets: targets)], wrt: [inputName], rules: rules))
    }

    /// One forward and one backward of `sum_b logit[b, targets[b]]` over a batch: the logits, the
    /// gradients with respect to `wrt`, and the `keep` activations.
    /// - Parameters:
    ///   - x: the batch on the device.
    ///   - targets: the class of each image, or `nil` to resolve `target` from the logits.
    ///   - rules: the backward's rules (default: the gradient; guided backpropagation's change the
    ///     rectifiers').
    ///   - executor: the executor to run, `executor` by default (``unfusedExecutor()`` for the rules
    ///     that read an activation's input).
    public func gradients(_ x: DeviceArray, targets: [Int]? = nil, target: Target = .predicted,
                          wrt: Set<String>, keep: Set<String> = [],
                          rules: PropagationRules = .gradient, executor: Executor? = nil) throws -> (logits: Tensor, targets: [Int], grads: [String: DeviceArray], kept: [String: DeviceArray]) {
        let r = try backwards(x, targets: targets, target: target, keep: keep, [(wrt, rules)], executor: executor)
        return (r.logits, r.targets, r.grads[0], r.kept)
    }

    /// One forward and several backwards of `sum_b logit[b, targets[b]]` from it, each to its own
    /// values under its own rules (guided Grad-CAM's plain backward to a layer and guided backward
    /// to the input share one forward). The forward retains only what these backwards read.
    public func backwards(_ x: DeviceArray, targets: [Int]? = nil, target: Target = .predicted, keep: Set<String> = [],
                          _ backwards: [(wrt: Set<String>, rules: PropagationRules)], executor: Executor? = nil)
        throws -> (logits: Tensor, targets: [Int], grads: [[String: DeviceArray]], kept: [String: DeviceArray]) {
        let executor = executor ?? self.executor
        let everyWrt = backwards.reduce(into: Set<String>()) { $0.formUnion($1.wrt) }
        let pass = try executor.forward(x, keep: keep, forBackward: true, backwardTo: everyWrt)
        let y = try pass.output(outputName)
        let logits = try backend.download(y)
        let t = try targets ?? resolve(target, logits: logits)
        let seeds = [outputName: try seed(y.shape, targets: t)]
        let grads = try backwards.map { try executor.backward(pass, seeds: seeds, wrt: $0.wrt, rules: $0.rules) }
        return (logits, t, grads, pass.kept)
    }

    /// The gradient with respect to the input, from the result of ``gradients(_:targets:target:wrt:keep:)``.
    public func inputGradient(_ grads: [String: DeviceArray]) throws -> DeviceArray {
        guard let g = grads[inputName] else { throw XAIError.invalidArgument(parameter: "wrt", value: inputName, reason: "no gradient was taken") }
        return g
    }

    // MARK: Images and baselines

    /// Row `b` of a batch tensor as a `[1, ...]` tensor.
    public static func image(_ t: Tensor, _ b: Int) throws -> Tensor {
        let per = t.shape.count / max(t.shape[0], 1)
        return try Tensor(shape: Shape([1] + t.shape.dims.dropFirst()), scalars: Array(t.scalars[(b * per)..<((b + 1) * per)]))
    }

    /// Stacks `[1, ...]` tensors into a batch.
    static func stack(_ parts: [Tensor]) throws -> Tensor {
        guard let first = parts.first else { throw XAIError.invalidArgument(parameter: "images", value: "", reason: "nothing to stack") }
        return try Tensor(shape: Shape([parts.count] + first.shape.dims.dropFirst()), scalars: parts.flatMap(\.scalars))
    }

    /// Image `b` of `input` and its baseline, both `[1, C, H, W]` host tensors.
    public func imageAndBaseline(_ input: Tensor, _ b: Int, _ baseline: Baseline) throws -> (image: Tensor, baseline: Tensor) {
        let image = try Self.image(input, b)
        return (image, try baselineTensor(baseline, for: image))
    }

    /// The baselines a method that draws from several (GradientSHAP, DeepLiftShap) takes for
    /// `image` (`[1, C, H, W]`): each image-sized piece of a tensor baseline `[K, C, H, W]`, or the
    /// one baseline.
    public func baselineDistribution(_ baseline: Baseline, for image: Tensor) throws -> [[Float]] {
        let per = image.shape.count
        if case .tensor(let t) = baseline, t.shape.count > per, t.shape.count % per == 0 {
            return (0..<(t.shape.count / per)).map { Array(t.scalars[($0 * per)..<(($0 + 1) * per)]) }
        }
        return [try baselineTensor(baseline, for: image).scalars]
    }

    /// The baseline as a `[1, C, H, W]` tensor for `image` (`[1, C, H, W]`).
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`baseline`) for values that do
    ///   not fit the image.
    public func baselineTensor(_ baseline: Baseline, for image: Tensor) throws -> Tensor {
        let one = Shape([1] + image.shape.dims.dropFirst())
        let planes = one.rank > 1 ? one[1] : 1, plane = one.count / max(planes, 1)
        let result: Tensor
        switch baseline {
        case .channelMean:
            let means = (0..<planes).map { c in image.scalars[(c * plane)..<((c + 1) * plane)].reduce(0.0) { $0 + Double($1) } / Double(max(plane, 1)) }
            result = Tensor(unchecked: one, means.flatMap { [Float](repeating: Float($0), count: plane) })
        case .blurred(let sigma):
            result = try gaussianBlur(image.reshaped(one), sigma: sigma)
        case .uniformNoise(let low, let high, let seed):
            guard low < high, low.isFinite, high.isFinite else {
                throw XAIError.invalidArgument(parameter: "baseline", value: "noise \(low)...\(high)", reason: "uniform noise needs finite low < high")
            }
            result = Tensor.uniform(one, in: low...high, seed: seed)
        case .zero:
            result = Tensor(shape: one)
        case .perChannel(let values):
            guard values.count == planes else {
                throw XAIError.invalidArgument(parameter: "baseline", value: "\(values)", reason: "\(values.count) channel values for \(planes) channels")
            }
            result = Tensor(unchecked: one, values.flatMap { [Float](repeating: $0, count: plane) })
        case .tensor(let t):
            guard t.shape.count == one.count else {
                throw XAIError.shapeMismatch(op: "baseline", expected: "a tensor of \(one.count) values, like \(one)", got: [t.shape])
            }
            result = try t.reshaped(one)
        }
        try result.requireFinite("baseline")
        return result
    }

    // MARK: CAM layers

    /// The layer a CAM method explains: `layer` when given (a 4-D activation, channels first or,
    /// as Swin's, last; or a transformer's `[N, T, C]` tokens, see ``camLayout(_:)``), else the
    /// default: for a transformer the output of the last block's first normalisation (as
    /// pytorch-grad-cam's tutorials use), otherwise the last 4-D activation before global pooling.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`layer`).
    public func camLayer(_ layer: String?) throws -> String {
        let s = try summary()
        if let layer {
            guard s.shapes[layer] != nil, graph.initializers[layer] == nil else {
                throw XAIError.invalidArgument(parameter: "layer", value: layer, reason: "no activation of \(graph.name) has this name (`xai inspect` lists them)")
            }
            _ = try camLayout(layer)
            return layer
        }
        if let l = try transformerCAMLayer() { return l }
        guard let l = s.lastSpatialActivation else {
            throw XAIError.invalidArgument(parameter: "layer", value: "", reason: "\(graph.name) has no 4-D activation; name one")
        }
        return l
    }

    /// A CAM `[N, 1, h, w]` as an attribution: the map upsampled to the input size (bilinear,
    /// half-pixel centres), `raw` the CAM at layer resolution.
    func camAttribution(_ cam: DeviceArray, input: Shape, logits: Tensor, targets: [Int]) throws -> Attribution {
        let up = try backend.resizeBilinear(cam, height: input[2], width: input[3], alignCorners: false)
        let raw = try backend.download(cam)
        return Attribution(map: try backend.download(up).reshaped([input[0], input[2], input[3]]),
                           raw: try raw.reshaped([raw.shape[0], raw.shape[2], raw.shape[3]]),
                           targets: targets, scores: Self.scores(logits, targets))
    }
}

/// A value built on first use, once, under a lock.
private final class OnceBuilt<T>: @unchecked Sendable {
    private var built: T?
    private let lock = NSLock()

    func value(_ make: () -> T) -> T {
        lock.lock(); defer { lock.unlock() }
        if let built { return built }
        let v = make()
        built = v
        return v
    }
}

/// The graph summary, computed once per model.
private final class SummaryCache: @unchecked Sendable {
    private var value: GraphSummary?
    private let lock = NSLock()

    func summary(_ make: () throws -> GraphSummary) throws -> GraphSummary {
        lock.lock(); defer { lock.unlock() }
        if let value { return value }
        let s = try make()
        value = s
        return s
    }
}
