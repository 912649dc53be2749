import Foundation
import XCTest
import XAI
import XAITestSupport
@testable import XAIMethods

/// Seeded random small graphs, for what hand-built models leave out.
///
/// - The incremental forward (occlusion's copies run on patches) against the full forward of the
///   same copies, on chains drawn from every op it handles on patches (convolutions of any
///   geometry and grouping, max and average pooling with and without counted pads, pointwise ops, a
///   per-channel product, residual sums and channel concatenations of windowed values) and from ops
///   that send it to whole maps (ceil-mode or pad-excluding average pooling, a constant that varies
///   over the map), raw and after the graph's rewrites (which fuse activations and residuals into
///   the convolutions).
/// - The gradient methods' axioms on random linear models, where each has a closed form: the
///   gradient is the same at every input and its product with any direction is the change of the
///   logit (checked in float64), Gradient x Input is the input times it, Integrated Gradients is
///   `(x - baseline)` times it for every rule and step count, and SmoothGrad's mean is it.
/// - Exact Shapley values and KernelSHAP (fully enumerated) do not depend on how the segments are
///   numbered. (LIME and sampled KernelSHAP draw their coalitions per segment number, so they agree
///   only in distribution; KernelSHAP's estimator is checked under renumbering in PerturbationTests.)
final class RandomGraphTests: XCTestCase {
    private func draw(_ rng: inout SeededGenerator, _ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(rng.next() % UInt64(range.count))
    }

    /// A chain of 3 to 7 layers on a `[1, 3, size, size]` input, then global pooling and a linear head.
    private func randomChain(_ rng: inout SeededGenerator, trial: Int, size: Int) -> Graph {
        var nodes: [Node] = []
        var initializers: [String: Tensor] = [:]
        var values: [(name: String, c: Int, h: Int, w: Int)] = [("input", 3, size, size)]
        var current = values[0]
        var layer = 0
        func emit(_ op: Op, _ inputs: [String], _ c: Int, _ h: Int, _ w: Int) {
            let name = "v\(layer)"
            nodes.append(Node(name: "n\(layer)", op: op, inputs: inputs, outputs: [name]))
            current = (name, c, h, w)
            values.append(current)
            layer += 1
        }
        for _ in 0..<draw(&rng, 3...7) {
            switch draw(&rng, 0...7) {
            case 0, 1, 2:
                let k = draw(&rng, 1...5), d = draw(&rng, 1...2), s = draw(&rng, 1...2)
                let reach = (k - 1) * d
                let pads = (top: draw(&rng, 0...reach), left: draw(&rng, 0...reach), bottom: draw(&rng, 0...reach), right: draw(&rng, 0...reach))
                let oh = (current.h + pads.top + pads.bottom - reach - 1) / s + 1, ow = (current.w + pads.left + pads.right - reach - 1) / s + 1
                guard current.h + pads.top + pads.bottom > reach, current.w + pads.left + pads.right > reach, oh >= 6, ow >= 6 else { continue }
                let depthwise = current.c > 1 && draw(&rng, 0...2) == 0
                let groups = depthwise ? current.c : 1
                let outC = depthwise ? current.c * draw(&rng, 1...2) : draw(&rng, 2...6)
                let name = "w\(layer)"
                initializers[name] = .uniform([outC, current.c / groups, k, k], in: -0.6...0.6, seed: rng.next())
                initializers[name + ".b"] = .uniform([outC], seed: rng.next())
                emit(.conv(Conv2DParams(strides: (s, s), pads: pads, dilations: (d, d), groups: groups), activation: .identity, autoPad: .explicit),
                     [current.name, name, name + ".b"], outC, oh, ow)
            case 3:
                let k = draw(&rng, 2...3), s = draw(&rng, 1...2)
                let pads = (top: draw(&rng, 0...k - 1), left: draw(&rng, 0...k - 1), bottom: draw(&rng, 0...k - 1), right: draw(&rng, 0...k - 1))
                let p = Pool2DParams(draw(&rng, 0...1) == 0 ? .max : .average, kernel: (k, k), stride: (s, s), padding: pads,
                                     ceilMode: draw(&rng, 0...3) == 0, countIncludePad: draw(&rng, 0...1) == 0)
                guard let out = try? p.outputShape(input: [1, current.c, current.h, current.w]), out[2] >= 6, out[3] >= 6 else { continue }
                emit(.pool(p, autoPad: .explicit), [current.name], current.c, out[2], out[3])
            case 4:
                let ops: [UnaryOp] = [.relu, .tanh, .silu, .sigmoid, .leakyRelu(alpha: 0.1)]
                emit(.unary(ops[draw(&rng, 0...ops.count - 1)]), [current.name], current.c, current.h, current.w)
            case 5:
                let name = "k\(layer)"
                initializers[name] = .uniform([1, current.c, 1, 1], in: 0.5...1.5, seed: rng.next())
                emit(.binary(.mul), [current.name, name], current.c, current.h, current.w)
            case 6:
                // A residual: the sum with an earlier value of the same shape.
                guard let earlier = values.dropLast().last(where: { $0.c == current.c && $0.h == current.h && $0.w == current.w }) else { continue }
                emit(.binary(.add), [current.name, earlier.name], current.c, current.h, current.w)
            default:
                guard let earlier = values.dropLast().last(where: { $0.h == current.h && $0.w == current.w }) else { continue }
                emit(.concat(axis: 1), [earlier.name, current.name], earlier.c + current.c, current.h, current.w)
            }
        }
        if trial % 4 == 3 {
            // A constant that varies over the map: what follows runs on whole maps.
            initializers["map"] = .uniform([1, current.c, current.h, current.w], seed: rng.next())
            emit(.binary(.add), [current.name, "map"], current.c, current.h, current.w)
        }
        let features = current.c
        nodes.append(Node(name: "pool", op: .globalAveragePool, inputs: [current.name], outputs: ["p"]))
        nodes.append(Node(name: "flat", op: .flatten(axis: 1), inputs: ["p"], outputs: ["q"]))
        nodes.append(Node(name: "fc", op: .gemm(transA: false, transB: true, alpha: 1, beta: 1, activation: .identity),
                          inputs: ["q", "fw", "fb"], outputs: ["logits"]))
        initializers["fw"] = .uniform([4, features], seed: rng.next())
        initializers["fb"] = .uniform([4], seed: rng.next())
        return Graph(name: "random_\(trial)", inputs: [ValueInfo(name: "input", shape: [nil, 3, size, size])],
                     outputs: [ValueInfo(name: "logits", shape: [nil, 4])], initializers: initializers, nodes: nodes)
    }

    func testIncrementalForwardOnRandomGraphs() throws {
        var backends: [(String, any Backend)] = [("cpu", CPUBackend()), ("cpu direct", CPUBackend(convolutionPolicy: .direct))]
        if let cl = TestBackends.openCL() { backends.append(("opencl", cl)) }
        var rng = SeededGenerator(seed: 31)
        var patched = 0
        for trial in 0..<12 {
            let size = draw(&rng, 18...28)
            let raw = randomChain(&rng, trial: trial, size: size)
            let count = draw(&rng, 1...3), height = draw(&rng, 2...6), width = draw(&rng, 2...6)
            let windows = WindowSet(tops: (0..<count).map { _ in draw(&rng, 0...size - height) }, lefts: (0..<count).map { _ in draw(&rng, 0...size - width) },
                                    height: height, width: width)
            let imageSeed = rng.next(), patchSeed = rng.next()
            for (form, graph) in [("raw", raw), ("rewritten", try raw.optimized())] {
                for (label, be) in backends[(trial % 2 == 0 ? 0 : 1)...] {
                    let what = "\(graph.name) (\(form), \(graph.nodes.map { "\($0.op)".prefix(12) }.joined(separator: " > "))) on \(label), windows \(windows)"
                    let executor = Executor(graph: graph, backend: be)
                    let image = try be.upload(.uniform([1, 3, size, size], seed: imageSeed))
                    let clean = try executor.forward(image, forBackward: true)
                    let patches = try be.upload(.uniform([count, 3, height, width], seed: patchSeed))
                    let whole = WindowSet(tops: Array(repeating: 0, count: count), lefts: Array(repeating: 0, count: count), height: size, width: size)
                    let copies = try be.splice(clean: image, patches: patches, windows: windows, tiles: whole, fill: nil)
                    let expected = try be.download(try executor.forward(copies).output("logits"))
                    let pass = try executor.forward(copiesOf: clean, patches: patches, at: windows, plan: nil)
                    let got = try be.download(try XCTUnwrap(pass.outputs["logits"], what))
                    XCTAssertLessThan(relativeL2(doubles(got), doubles(expected)), 1e-5, what)
                    if pass.convolutionMACs < pass.fullConvolutionMACs { patched += 1 }
                }
            }
        }
        // The draws must exercise the patch path, not only its fallback to whole maps.
        XCTAssertGreaterThan(patched, 8)
    }

    /// The Jacobian product from the input (``Executor/jacobianProduct(_:layer:direction:)``) is the
    /// transpose of the backward, `<J t, w> = <t, J^T w>` for fresh `t` and `w`, on random chains
    /// (convolutions of any geometry with biases, average pooling, rectifiers, per-channel scales,
    /// residual sums, concatenations, a constant map added) as loaded and as rewritten (activations
    /// and sums fused into convolutions), and on a chain of a standalone batch norm, a pad filled
    /// with a constant and average pooling; a chain with a smooth op or max pooling is refused with
    /// the node named.
    func testJacobianProductOnRandomGraphs() throws {
        var rng = SeededGenerator(seed: 32)
        var checked = 0, refused = 0
        var graphs: [Graph] = []
        for trial in 0..<16 {
            let raw = randomChain(&rng, trial: trial, size: draw(&rng, 14...22))
            graphs += [raw, try raw.optimized()]
        }
        do {
            let nodes = [Node(name: "bn", op: .batchNorm(epsilon: 1e-5), inputs: ["input", "s", "b", "m", "v"], outputs: ["n"]),
                         Node(name: "pad", op: .pad, inputs: ["n", "pads", "fill"], outputs: ["padded"]),
                         Node(name: "avg", op: .pool(Pool2DParams(.average, kernel: (3, 3), stride: (2, 2)), autoPad: .explicit), inputs: ["padded"], outputs: ["a"]),
                         Node(name: "act", op: .unary(.relu), inputs: ["a"], outputs: ["r"]),
                         Node(name: "pool", op: .globalAveragePool, inputs: ["r"], outputs: ["p"]),
                         Node(name: "flat", op: .flatten(axis: 1), inputs: ["p"], outputs: ["q"]),
                         Node(name: "fc", op: .gemm(transA: false, transB: true, alpha: 1, beta: 1, activation: .identity), inputs: ["q", "fw", "fb"], outputs: ["logits"])]
            let initializers: [String: Tensor] = ["s": .uniform([3], in: 0.5...1.5, seed: 1), "b": .uniform([3], seed: 2), "m": .uniform([3], seed: 3),
                                                  "v": .uniform([3], in: 0.5...1.5, seed: 4), "pads": Tensor(unchecked: [8], [0, 0, 1, 2, 0, 0, 2, 1]),
                                                  "fill": Tensor(unchecked: [1], [0.25]), "fw": .uniform([4, 3], seed: 5), "fb": .uniform([4], seed: 6)]
            graphs.append(Graph(name: "pad_chain", inputs: [ValueInfo(name: "input", shape: [nil, 3, 12, 12])], outputs: [ValueInfo(name: "logits", shape: [nil, 4])],
                                initializers: initializers, nodes: nodes))
        }
        for (index, graph) in graphs.enumerated() {
            for (label, be) in TestBackends.all() where index % 2 == 0 || label == "cpu" {
                let what = "\(graph.name) (\(graph.nodes.map { "\($0.op)".prefix(12) }.joined(separator: " > "))) on \(label)"
                let executor = Executor(graph: graph, backend: be)
                let shape = try graph.inputs[0].shape(batch: 2)
                let image = try be.upload(.uniform(shape, seed: rng.next()))
                let pass = try executor.forward(image, forBackward: true)
                let t = Tensor.uniform(shape, seed: rng.next()), w = Tensor.uniform([2, 4], seed: rng.next())
                let smooth = graph.nodes.first { node in
                    if case .pool(let p, _) = node.op, p.kind == .max { return true }
                    return !node.op.isPiecewiseLinear(inInputs: [0])
                }
                if let smooth {
                    XCTAssertThrowsError(try executor.jacobianProduct(pass, layer: "input", direction: try be.upload(t)), what) { error in
                        XCTAssertTrue("\(error)".contains(smooth.name), "\(what): \(error)")
                    }
                    refused += 1
                    continue
                }
                let jt = try be.download(try XCTUnwrap(try executor.jacobianProduct(pass, layer: "input", direction: try be.upload(t))["logits"], what))
                let jtw = try be.download(try XCTUnwrap(try executor.backward(pass, seeds: ["logits": try be.upload(w)], wrt: ["input"])["input"], what))
                let left: Double = zip(doubles(jt), doubles(w)).reduce(0.0) { $0 + $1.0 * $1.1 }
                let right: Double = zip(doubles(t), doubles(jtw)).reduce(0.0) { $0 + $1.0 * $1.1 }
                XCTAssertEqual(left, right, accuracy: 1e-5 * max(abs(left), 1), what)
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 8)
        XCTAssertGreaterThan(refused, 2)
    }

    /// A random linear model: convolutions (any geometry, grouped or not), average pooling, a
    /// per-channel scale, a residual sum, global pooling and a linear head; no activation.
    private func randomLinearModel(_ rng: inout SeededGenerator, trial: Int, backend: any Backend) throws -> (ExplainedModel, Graph, Int) {
        let size = draw(&rng, 10...16)
        var nodes: [Node] = []
        var initializers: [String: Tensor] = [:]
        var current = ("input", 3, size)
        var convolutions = 0
        for layer in 0..<draw(&rng, 2...4) {
            let k = draw(&rng, 1...3), s = draw(&rng, 1...2), p = draw(&rng, 0...k - 1)
            let out = (current.2 + 2 * p - k) / s + 1
            guard out >= 3 else { break }
            let c = draw(&rng, 2...4)
            initializers["w\(layer)"] = .uniform([c, current.1, k, k], seed: rng.next())
            initializers["b\(layer)"] = .uniform([c], seed: rng.next())
            nodes.append(Node(name: "conv\(layer)", op: .conv(Conv2DParams(strides: (s, s), pads: (p, p, p, p)), activation: .identity, autoPad: .explicit),
                              inputs: [current.0, "w\(layer)", "b\(layer)"], outputs: ["c\(layer)"]))
            convolutions += 1
            current = ("c\(layer)", c, out)
            if draw(&rng, 0...1) == 0 {
                initializers["k\(layer)"] = .uniform([1, c, 1, 1], seed: rng.next())
                nodes.append(Node(name: "scale\(layer)", op: .binary(.mul), inputs: [current.0, "k\(layer)"], outputs: ["s\(layer)"]))
                nodes.append(Node(name: "res\(layer)", op: .binary(.add), inputs: ["s\(layer)", current.0], outputs: ["r\(layer)"]))
                current.0 = "r\(layer)"
            }
            if current.2 >= 6, draw(&rng, 0...1) == 0 {
                nodes.append(Node(name: "avg\(layer)", op: .pool(Pool2DParams(.average, kernel: (2, 2)), autoPad: .explicit),
                                  inputs: [current.0], outputs: ["a\(layer)"]))
                current = ("a\(layer)", current.1, current.2 / 2)
            }
        }
        XCTAssertGreaterThan(convolutions, 0)
        nodes.append(Node(name: "pool", op: .globalAveragePool, inputs: [current.0], outputs: ["p"]))
        nodes.append(Node(name: "flat", op: .flatten(axis: 1), inputs: ["p"], outputs: ["q"]))
        nodes.append(Node(name: "fc", op: .gemm(transA: false, transB: true, alpha: 1, beta: 1, activation: .identity), inputs: ["q", "fw", "fb"], outputs: ["logits"]))
        initializers["fw"] = .uniform([5, current.1], seed: rng.next())
        initializers["fb"] = .uniform([5], seed: rng.next())
        let graph = Graph(name: "linear_\(trial)", inputs: [ValueInfo(name: "input", shape: [nil, 3, size, size])],
                          outputs: [ValueInfo(name: "logits", shape: [nil, 5])], initializers: initializers, nodes: nodes)
        return (try ExplainedModel(graph: graph, backend: backend), graph, size)
    }

    func testGradientMethodsAreExactOnRandomLinearModels() throws {
        var rng = SeededGenerator(seed: 404)
        for trial in 0..<6 {
            for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" || trial == 0 {
                var draws = SeededGenerator(seed: 404 + UInt64(trial))
                let (model, graph, size) = try randomLinearModel(&draws, trial: trial, backend: backend)
                let shape: Shape = [2, 3, size, size]
                let x = Tensor.uniform(shape, seed: rng.next()), other = Tensor.uniform(shape, in: -3...3, seed: rng.next())
                let baselineTensor = Tensor.uniform([1, 3, size, size], seed: rng.next())
                let targets = [draw(&rng, 0...4), draw(&rng, 0...4)]
                let what = "\(graph.name) (\(graph.nodes.count) nodes) on \(label)"
                func raw(_ a: Attribution) throws -> [Double] { doubles(try XCTUnwrap(a.raw, what)) }

                let gradient = try raw(try Saliency(model: model, reduction: .sum).attribute(x, target: .perImage(targets), baseline: .zero))
                // The same gradient everywhere.
                let elsewhere = try raw(try Saliency(model: model, reduction: .sum).attribute(other, target: .perImage(targets), baseline: .zero))
                XCTAssertNil(mismatch(elsewhere, gradient, rtol: 1e-4, atol: 1e-6), "\(what): the gradient moved with the input")
                // Its product with a direction is the logit's change, in float64.
                let reference = try ExplainedModel(graph: graph, backend: ReferenceBackend())
                let direction = Tensor.uniform(shape, seed: rng.next())
                let moved = try Tensor(shape: shape, scalars: zip(x.scalars, direction.scalars).map { $0 + $1 })
                let before = try reference.logits(try reference.backend.upload(x)), after = try reference.logits(try reference.backend.upload(moved))
                let per = shape.count / 2
                for b in 0..<2 {
                    let change = Double(after.scalars[b * 5 + targets[b]]) - Double(before.scalars[b * 5 + targets[b]])
                    let predicted = (b * per..<(b + 1) * per).reduce(0.0) { $0 + gradient[$1] * Double(direction.scalars[$1]) }
                    XCTAssertEqual(predicted, change, accuracy: 1e-4 * max(1, abs(change)), "\(what): image \(b), gradient . d vs f(x + d) - f(x)")
                }
                let product = zip(x.scalars, gradient).map { Double($0) * $1 }
                let gxi = try raw(try InputXGradient(model: model).attribute(x, target: .perImage(targets), baseline: .zero))
                XCTAssertNil(mismatch(gxi, product, rtol: 1e-4, atol: 1e-6), "\(what): Gradient x Input is not x times the gradient")
                for rule in IntegrationRule.allCases {
                    for steps in [1, 2, 7] where steps >= rule.minimumSteps {
                        let ig = try raw(try IntegratedGradients(model: model, steps: steps, rule: rule).attribute(x, target: .perImage(targets),
                                                                                                                baseline: .tensor(baselineTensor)))
                        let expected = (0..<shape.count).map { (Double(x.scalars[$0]) - Double(baselineTensor.scalars[$0 % per])) * gradient[$0] }
                        XCTAssertNil(mismatch(ig, expected, rtol: 1e-4, atol: 1e-6), "\(what): IG \(rule) with \(steps) steps is not (x - baseline) times the gradient")
                    }
                }
                let smooth = SmoothGrad(base: Saliency(model: model, reduction: .sum), samples: 5, noiseLevel: 0.3, seed: rng.next())
                let mean = try raw(try smooth.attribute(x, target: .perImage(targets), baseline: .zero))
                XCTAssertNil(mismatch(mean, gradient, rtol: 1e-4, atol: 1e-6), "\(what): SmoothGrad's mean gradient moved with the noise")
            }
        }
    }

    /// The segments renumbered (a permutation of the labels) give the same per-pixel map.
    func testSegmentMethodsDoNotDependOnHowSegmentsAreNumbered() throws {
        let model = try ExplainedModel(graph: try Models.load(fixturesDirectory + "/models/plain_cnn/model.onnx"), backend: CPUBackend())
        let input = try NPY.read(fixturesDirectory + "/models/plain_cnn/input.npy")
        let one = try Tensor(shape: Shape([1] + input.shape.dims.dropFirst()), scalars: Array(input.scalars.prefix(input.shape.count / input.shape[0])))
        let (h, w) = (one.shape[2], one.shape[3])
        var rng = SeededGenerator(seed: 8)
        // Irregular segments: random rectangles painted over a grid (at most 7 segments, so that
        // KernelSHAP's 126 coalitions enumerate all).
        var labels = (0..<(h * w)).map { min(($0 / w) * 2 / h, 1) * 2 + min(($0 % w) * 2 / w, 1) }
        for _ in 0..<3 {
            let top = draw(&rng, 0...h - 3), left = draw(&rng, 0...w - 3), value = draw(&rng, 0...8)
            for y in top..<min(h, top + draw(&rng, 2...h / 2)) { for x in left..<min(w, left + draw(&rng, 2...w / 2)) { labels[y * w + x] = value } }
        }
        let used = Array(Set(labels)).sorted()
        let compact = labels.map { used.firstIndex(of: $0)! }
        let permutation = (0..<used.count).shuffled(using: &rng)
        let renumbered = compact.map { permutation[$0] }
        let a = try Tensor(shape: [h, w], scalars: compact.map(Float.init)), b = try Tensor(shape: [h, w], scalars: renumbered.map(Float.init))
        let methods: [(String, (Segmentation) -> any AttributionMethod)] = [
            ("exact Shapley", { ExactShapley(model: model, segmentation: $0) }),
            ("KernelSHAP", { KernelSHAP(model: model, samples: 200, segmentation: $0, seed: 3) }),
        ]
        for (name, make) in methods {
            let first = try make(.labels(a)).attribute(one, target: .index(1), baseline: .zero).map
            let second = try make(.labels(b)).attribute(one, target: .index(1), baseline: .zero).map
            XCTAssertNil(mismatch(doubles(second), doubles(first), rtol: 1e-4, atol: 1e-6), "\(name) depends on how the segments are numbered")
        }
    }
}
