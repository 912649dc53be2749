import Foundation
import XCTest
import XAI
import XAITestSupport
@testable import XAIMethods

/// The perturbation methods against Captum (occlusion) and scikit-image (SLIC) fixtures from
/// Tools/make_perturbation_fixtures.py, and against exact oracles: full-enumeration Shapley values,
/// an additive model whose Shapley values and LIME coefficients are known, a host recomputation of
/// RISE, and KernelSHAP's efficiency constraint.
final class PerturbationTests: XCTestCase {
    static let fixtures = fixturesDirectory + "/perturbation"

    /// Backends for the slower perturbation checks: the CPU and the OpenCL device.
    func backends() -> [(String, any Backend)] { TestBackends.all().filter { $0.0 == "cpu" || $0.0 == "opencl" } }

    func model(_ name: String, _ backend: any Backend) throws -> (ExplainedModel, Tensor, [Int]) {
        let dir = fixturesDirectory + "/models/\(name)"
        let graph = try ONNXImporter.load(path: dir + "/model.onnx").optimized()
        return (try ExplainedModel(graph: graph, backend: backend), try NPY.read(dir + "/input.npy"), try NPY.read(dir + "/target.npy").integers("fixture"))
    }

    /// `input -> 1x1 conv (3 -> 4 channels) -> global average pool -> linear (4 -> 5)`: every logit
    /// is affine in the pixels, so a masked image's score is additive over segments.
    func additiveModel(_ backend: any Backend, size: Int = 24) throws -> ExplainedModel {
        let nodes = [
            Node(name: "conv", op: .conv(Conv2DParams(), activation: .identity, autoPad: .explicit), inputs: ["input", "w", "b"], outputs: ["c"]),
            Node(name: "pool", op: .globalAveragePool, inputs: ["c"], outputs: ["p"]),
            Node(name: "flat", op: .flatten(axis: 1), inputs: ["p"], outputs: ["f"]),
            Node(name: "fc", op: .gemm(transA: false, transB: true, alpha: 1, beta: 1, activation: .identity), inputs: ["f", "fw", "fb"], outputs: ["logits"]),
        ]
        let graph = Graph(name: "additive", inputs: [ValueInfo(name: "input", shape: [nil, 3, size, size])],
                          outputs: [ValueInfo(name: "logits", shape: [nil, 5])],
                          initializers: ["w": .uniform([4, 3, 1, 1], seed: 1), "b": .uniform([4], seed: 2),
                                         "fw": .uniform([5, 4], seed: 3), "fb": .uniform([5], seed: 4)], nodes: nodes)
        return try ExplainedModel(graph: graph, backend: backend)
    }

    func relativeError(_ a: [Double], _ b: [Double]) -> Double { relativeL2(a, b) }

    // MARK: Batch sizing

    /// The forward's peak live bytes, against a hand walk of a graph with a skip connection
    /// (floats per image): input 192 stays; conv a +256 = 448; tanh r +256 = 704; add s +256 = 960
    /// (the peak), then r and a are released (448); pool p +4, s released (196); flatten f +4, p
    /// released; gemm logits +5, f released: 201 at the end.
    func testForwardPeakFollowsTheExecutorsReleaseOrder() throws {
        let nodes = [
            Node(name: "conv", op: .conv(Conv2DParams(), activation: .identity, autoPad: .explicit), inputs: ["input", "w", "b"], outputs: ["a"]),
            Node(name: "tanh", op: .unary(.tanh), inputs: ["a"], outputs: ["r"]),
            Node(name: "add", op: .binary(.add), inputs: ["r", "a"], outputs: ["s"]),
            Node(name: "pool", op: .globalAveragePool, inputs: ["s"], outputs: ["p"]),
            Node(name: "flat", op: .flatten(axis: 1), inputs: ["p"], outputs: ["f"]),
            Node(name: "fc", op: .gemm(transA: false, transB: true, alpha: 1, beta: 1, activation: .identity), inputs: ["f", "fw", "fb"], outputs: ["logits"]),
        ]
        let graph = Graph(name: "skip", inputs: [ValueInfo(name: "input", shape: [nil, 3, 8, 8])],
                          outputs: [ValueInfo(name: "logits", shape: [nil, 5])],
                          initializers: ["w": .uniform([4, 3, 1, 1], seed: 1), "b": .uniform([4], seed: 2),
                                         "fw": .uniform([5, 4], seed: 3), "fb": .uniform([5], seed: 4)], nodes: nodes)
        let model = try ExplainedModel(graph: graph, backend: CPUBackend())
        XCTAssertEqual(try model.bytesPerImageForForward(), 960 * 4)
        // A backward keeps every activation and its gradient.
        XCTAssertEqual(try model.bytesPerImageForBackward(), (192 + 3 * 256 + 4 + 4 + 5) * 4 * 2)
        // The default perturbation batch follows the peak and the cap.
        let engine = PerturbationEngine(model: model)
        XCTAssertEqual(try engine.batchSize(for: [1, 3, 8, 8]), PerturbationEngine.defaultBatchLimit)
        let tight = try ExplainedModel(graph: graph, backend: CPUBackend(memoryBudget: 4 * 10 * (960 * 4 * 2 + 192 * 4)))
        XCTAssertEqual(try PerturbationEngine(model: tight).batchSize(for: [1, 3, 8, 8]), 10)
    }

    // MARK: Occlusion

    func testOcclusionMatchesCaptum() throws {
        for name in ["small_resnet", "mobile_block"] {
            let reference = try NPY.read(Self.fixtures + "/\(name)/occlusion.npy")
            let (n, h, w) = (reference.shape[0], reference.shape[2], reference.shape[3])
            // Captum's window spans the channels, so each channel carries the same map.
            var channel0: [Double] = []
            for b in 0..<n {
                let start = b * 3 * h * w
                channel0 += reference.scalars[start..<(start + h * w)].map { Double($0) }
            }
            for (label, backend) in TestBackends.all() {
                let (model, input, targets) = try self.model(name, backend)
                for batch in [16, 1000] {
                    let a = try Occlusion(model: model, window: (8, 8), stride: (5, 5), perturbationsPerEval: batch).attribute(input, target: .perImage(targets))
                    XCTAssertEqual(a.map.shape, [n, h, w])
                    XCTAssertLessThan(relativeError(doubles(a.map), channel0), 1e-4, "occlusion \(name) on \(label), batch \(batch)")
                }
            }
        }
    }

    /// Occlusion on the probability (softmax taken on the device for the copies and the clean
    /// image alike) against copies made on the host, run through the same backend's forward and
    /// softmaxed in float64.
    func testOcclusionOnTheProbabilityEqualsAHostRecomputation() throws {
        for (label, backend) in backends() {
            let (model, input, targets) = try self.model("mobile_block", backend)
            let (n, h, w) = (input.shape[0], input.shape[2], input.shape[3]), plane = h * w
            func probability(_ image: [Float], _ target: Int) throws -> Double {
                let logits = try model.logits(try backend.upload(try Tensor(shape: [1, 3, h, w], scalars: image)))
                let row = logits.scalars.map(Double.init), top = row.max()!
                return exp(row[target] - top) / row.reduce(0) { $0 + exp($1 - top) }
            }
            var expected = [[Double]](repeating: [Double](repeating: 0, count: plane), count: n)
            for b in 0..<n {
                let image = Array(input.scalars[(b * 3 * plane)..<((b + 1) * 3 * plane)])
                let clean = try probability(image, targets[b])
                for top in stride(from: 0, to: h, by: 10) {
                    for left in stride(from: 0, to: w, by: 10) {
                        var copy = image
                        for c in 0..<3 { for y in top..<(top + 10) { for x in left..<(left + 10) { copy[c * plane + y * w + x] = 0 } } }
                        let change = clean - (try probability(copy, targets[b]))
                        for y in top..<(top + 10) { for x in left..<(left + 10) { expected[b][y * w + x] = change } }
                    }
                }
                XCTAssertGreaterThan(expected[b].map(abs).max()!, 1e-4, "image \(b) on \(label): the windows change the probability")
            }
            for incremental in [false, true] {
                let a = try Occlusion(model: model, window: (10, 10), stride: (10, 10), incremental: incremental, output: .probability)
                    .attribute(input, target: .perImage(targets))
                for b in 0..<n {
                    let got = a.map.scalars[(b * plane)..<((b + 1) * plane)].map(Double.init)
                    XCTAssertLessThan(relativeError(got, expected[b]), 1e-4, "occlusion on the probability, image \(b), incremental \(incremental), on \(label)")
                }
            }
        }
    }

    /// Incremental occlusion against every copy through the whole network, on every zoo model (64x64
    /// random images; windows 16 at stride 8, and 12 at stride 10, whose last windows are clipped)
    /// and every fixture model, on the CPU and OpenCL (there: the fixture models and two zoo models,
    /// for time). Where every convolution keeps one algorithm (OpenCL, the CPU's direct policy) the
    /// patches are bit for bit the full maps' pixels; under `auto` a tile may get Winograd where the
    /// whole map got direct (or the other way round), so the maps agree to rounding. The convolution
    /// work that ran is reported, and below the full passes' where windows are small.
    func testIncrementalOcclusionEqualsFullRecomputation() throws {
        var cases: [(name: String, graph: Graph, input: Tensor, window: Int, stride: Int)] = []
        for name in Zoo.names {
            let graph = try Zoo.model(name, size: 64, seed: 5).optimized()
            cases.append((name, graph, .uniform([1, 3, 64, 64], seed: 21), 16, 8))
            if name == "resnet18" || name == "squeezenet1_1" { cases.append((name + " 12/10", graph, .uniform([1, 3, 64, 64], seed: 22), 12, 10)) }
        }
        cases.append(("incremental_ops", incrementalOpsModel(), .uniform([1, 3, 40, 40], seed: 23), 5, 4))
        for name in ["small_resnet", "mobile_block", "squeeze_block", "plain_cnn", "op_zoo", "squeezenet1_1"] {
            let dir = fixturesDirectory + "/models/\(name)"
            let input = try NPY.read(dir + "/input.npy")
            let one = try Tensor(shape: Shape([1] + input.shape.dims.dropFirst()), scalars: Array(input.scalars[..<(input.shape.count / input.shape[0])]))
            let side = min(one.shape[2], one.shape[3])
            cases.append((name, try ONNXImporter.load(path: dir + "/model.onnx").optimized(), one, max(2, side / 4), max(1, side / 6)))
        }
        var backends = TestBackends.all().filter { $0.0 == "cpu" || $0.0 == "opencl" }
        backends.insert(("cpu direct", CPUBackend(convolutionPolicy: .direct)), at: 1)
        for (label, backend) in backends {
            for c in cases where label.hasPrefix("cpu") || !Zoo.names.contains(where: { c.name.hasPrefix($0) }) || c.name.hasPrefix("resnet18") || c.name == "mobilenet_v2" {
                let model = try ExplainedModel(graph: c.graph, backend: backend)
                func run(_ incremental: Bool) throws -> Attribution {
                    try Occlusion(model: model, window: (c.window, c.window), stride: (c.stride, c.stride), incremental: incremental, perturbationsPerEval: 16)
                        .attribute(c.input, target: .predicted)
                }
                let (fast, full) = (try run(true), try run(false))
                let error = relativeError(doubles(fast.map), doubles(full.map))
                let work = fast.diagnostics["convolutionWork"]?.first ?? -1
                print("incremental occlusion \(c.name) on \(label): relative error \(error), convolution work \(work)")
                XCTAssertLessThan(error, label.hasPrefix("cpu") ? 5e-5 : 1e-6, "\(c.name) on \(label)")
                XCTAssertNil(full.diagnostics["convolutionWork"])
                XCTAssertGreaterThan(work, 0, c.name)
                XCTAssertLessThanOrEqual(work, 1, c.name)
                if c.name.hasPrefix("resnet") { XCTAssertLessThan(work, 0.95, c.name) }
                if c.name == "small_resnet" || c.name == "plain_cnn" { XCTAssertLessThan(work, 0.3, c.name) }
            }
        }
    }

    /// The executor's incremental pass on its own, against the whole network run on the same
    /// copies: interior windows (which no border clamping widens) with random patches, each batch
    /// planning for itself and under a plan made for more copies, on two models.
    func testIncrementalForwardEqualsTheFullForwardOfTheSameCopies() throws {
        var backends: [(String, any Backend)] = [("cpu direct", CPUBackend(convolutionPolicy: .direct))]
        if let cl = TestBackends.openCL() { backends.append(("opencl", cl)) }
        // The second model: a 3x3 convolution, a strided 1x1 one whose tiles start one column into
        // the patches of odd-aligned windows, and a sum with a constant that varies over the map.
        let nodes = [
            Node(name: "c", op: .conv(Conv2DParams(stride: 1, padding: 1), activation: .identity, autoPad: .explicit), inputs: ["input", "c.w", "c.b"], outputs: ["a"]),
            Node(name: "down", op: .conv(Conv2DParams(stride: 2), activation: .identity, autoPad: .explicit), inputs: ["a", "down.w", "down.b"], outputs: ["b"]),
            Node(name: "bias", op: .binary(.add), inputs: ["b", "map"], outputs: ["d"]),
            Node(name: "pool", op: .globalAveragePool, inputs: ["d"], outputs: ["p"]),
            Node(name: "flat", op: .flatten(axis: 1), inputs: ["p"], outputs: ["q"]),
            Node(name: "fc", op: .gemm(transA: false, transB: true, alpha: 1, beta: 1, activation: .identity), inputs: ["q", "fw", "fb"], outputs: ["logits"]),
        ]
        let strided = Graph(name: "strided", inputs: [ValueInfo(name: "input", shape: [nil, 3, 24, 24])], outputs: [ValueInfo(name: "logits", shape: [nil, 5])],
                            initializers: ["c.w": .uniform([4, 3, 3, 3], seed: 43), "c.b": .uniform([4], seed: 44),
                                           "down.w": .uniform([4, 4, 1, 1], seed: 45), "down.b": .uniform([4], seed: 46),
                                           "map": .uniform([1, 4, 12, 12], seed: 47), "fw": .uniform([5, 4], seed: 48), "fb": .uniform([5], seed: 49)],
                            nodes: nodes)
        let models: [(Graph, Int, WindowSet)] = [
            (incrementalOpsModel(), 40, WindowSet(tops: [12, 17, 20], lefts: [14, 9, 22], height: 5, width: 5)),
            (strided, 24, WindowSet(tops: [10, 13], lefts: [10, 7], height: 3, width: 3)),
        ]
        for (label, be) in backends {
            for (graph, size, windows) in models {
                let executor = Executor(graph: graph, backend: be)
                let image = try be.upload(.uniform([1, 3, size, size], seed: 41))
                let clean = try executor.forward(image, forBackward: true)
                let n = windows.count
                let patches = try be.upload(.uniform([n, 3, windows.height, windows.width], seed: 42))
                let whole = WindowSet(tops: Array(repeating: 0, count: n), lefts: Array(repeating: 0, count: n), height: size, width: size)
                let copies = try be.splice(clean: image, patches: patches, windows: windows, tiles: whole, fill: nil)
                let expected = try be.download(try executor.forward(copies).output("logits"))
                let wider = WindowSet(tops: windows.tops + [0, size - windows.height], lefts: windows.lefts + [size - windows.width, 0],
                                      height: windows.height, width: windows.width)
                for plan in [nil, try executor.incrementalPlan(clean: clean, windows: wider)] {
                    let what = "\(graph.name) on \(label), \(plan == nil ? "own plan" : "wider plan")"
                    let pass = try executor.forward(copiesOf: clean, patches: patches, at: windows, plan: plan)
                    let got = try be.download(try XCTUnwrap(pass.outputs["logits"]))
                    XCTAssertLessThan(relativeError(doubles(got), doubles(expected)), 1e-6, what)
                    XCTAssertLessThan(pass.convolutionMACs, pass.fullConvolutionMACs / 2, what)
                }
            }
        }
    }

    /// What the incremental planner handles, on signed activations: a convolution with one-sided
    /// pads, max pooling with padding (its minus-infinity fill), a dilated 5x5 convolution, a
    /// per-channel product, a sum of two windowed values, average pooling without pads and with
    /// counted pads, a channel concatenation (the narrower window first, as in the sum), a strided
    /// 1x1 convolution (whose tiles start inside patches that begin on odd columns), and a sum with
    /// a constant that varies over the map (which must run on whole maps).
    func incrementalOpsModel() -> Graph {
        func conv(_ name: String, _ x: String, _ p: Conv2DParams, _ out: String) -> Node {
            Node(name: name, op: .conv(p, activation: .identity, autoPad: .explicit), inputs: [x, name + ".w", name + ".b"], outputs: [out])
        }
        let nodes = [
            conv("c1", "input", Conv2DParams(strides: (1, 1), pads: (top: 1, left: 0, bottom: 2, right: 1)), "a"),
            Node(name: "max", op: .pool(Pool2DParams(.max, kernel: (3, 3), stride: (2, 2), padding: (1, 1, 1, 1)), autoPad: .explicit), inputs: ["a"], outputs: ["b"]),
            conv("c2", "b", Conv2DParams(strides: (1, 1), pads: (4, 4, 4, 4), dilations: (2, 2)), "c"),
            Node(name: "scale", op: .binary(.mul), inputs: ["c", "k"], outputs: ["d"]),
            Node(name: "sum", op: .binary(.add), inputs: ["b", "d"], outputs: ["e"]),
            Node(name: "avg", op: .pool(Pool2DParams(.average, kernel: (2, 2), stride: (1, 1)), autoPad: .explicit), inputs: ["e"], outputs: ["f"]),
            Node(name: "avgpad", op: .pool(Pool2DParams(.average, kernel: (3, 3), stride: (1, 1), padding: (1, 1, 1, 1), countIncludePad: true), autoPad: .explicit),
                 inputs: ["f"], outputs: ["g"]),
            Node(name: "cat", op: .concat(axis: 1), inputs: ["f", "g"], outputs: ["h"]),
            conv("down", "h", Conv2DParams(stride: 2), "i"),
            Node(name: "bias", op: .binary(.add), inputs: ["i", "map"], outputs: ["j"]),
            Node(name: "pool", op: .globalAveragePool, inputs: ["j"], outputs: ["p"]),
            Node(name: "flat", op: .flatten(axis: 1), inputs: ["p"], outputs: ["q"]),
            Node(name: "fc", op: .gemm(transA: false, transB: true, alpha: 1, beta: 1, activation: .identity), inputs: ["q", "fw", "fb"], outputs: ["logits"]),
        ]
        return Graph(name: "incremental_ops", inputs: [ValueInfo(name: "input", shape: [nil, 3, 40, 40])], outputs: [ValueInfo(name: "logits", shape: [nil, 5])],
                     initializers: ["c1.w": .uniform([6, 3, 3, 3], seed: 31), "c1.b": .uniform([6], seed: 32),
                                    "c2.w": .uniform([6, 6, 5, 5], seed: 33), "c2.b": .uniform([6], seed: 34),
                                    "k": .uniform([1, 6, 1, 1], seed: 35), "map": .uniform([1, 8, 10, 10], seed: 36),
                                    "down.w": .uniform([8, 12, 1, 1], seed: 39), "down.b": .uniform([8], seed: 40),
                                    "fw": .uniform([5, 8], seed: 37), "fb": .uniform([5], seed: 38)], nodes: nodes)
    }

    func testOcclusionWindowsCoverTheImageAndErrorsNameTheKnob() throws {
        let (model, _, _) = try self.model("mobile_block", CPUBackend())
        let rects = try Occlusion(model: model, window: (8, 8), stride: (5, 5)).windows(height: 40, width: 40)
        XCTAssertEqual(rects.count, 8 * 8)  // ceil((40 - 8) / 5) + 1 = 8 per side, the last clipped
        XCTAssertEqual(rects.last, MaskRect(top: 35, left: 35, height: 5, width: 5))
        // A stride above the window: the start past the image is dropped, every window is inside.
        let sparse = try Occlusion(model: model, window: (4, 4), stride: (15, 15)).windows(height: 40, width: 40)
        XCTAssertEqual(sparse.count, 9)
        XCTAssertTrue(sparse.allSatisfy { $0.top + $0.height <= 40 && $0.left + $0.width <= 40 && $0.height > 0 })
        XCTAssertThrowsError(try Occlusion(model: model, window: (41, 8)).windows(height: 40, width: 40)) { error in
            guard case XAIError.invalidArgument(let parameter, let value, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(parameter, "window")
            XCTAssertEqual(value, "41x8")
        }
    }

    // MARK: Shapley values

    func testKernelSHAPWithFullEnumerationEqualsExactShapley() throws {
        for (label, backend) in backends() {
            let (model, input, targets) = try self.model("mobile_block", backend)
            let segmentation = Segmentation.grid(rows: 2, columns: 5)
            let exact = try ExactShapley(model: model, segmentation: segmentation).attribute(input, target: .perImage(targets))
            let kernel = try KernelSHAP(model: model, samples: 1 << 10, segmentation: segmentation).attribute(input, target: .perImage(targets))
            XCTAssertEqual(kernel.diagnostics["fullyEnumerated"], [1, 1])
            let (e, k) = (doubles(exact.raw!), doubles(kernel.raw!))
            let scale = e.map(abs).max()!
            XCTAssertGreaterThan(scale, 1e-3, "degenerate game")
            for i in e.indices { XCTAssertEqual(k[i], e[i], accuracy: 1e-5 * scale, "segment \(i) on \(label)") }
            // The maps paint each segment's value on its pixels.
            XCTAssertEqual(kernel.map.shape, [2, 40, 40])
            XCTAssertEqual(Double(kernel.map[1, 39, 39]), k[10 + 9], accuracy: 1e-6 * scale)
        }
    }

    /// RISE's keep probability is a probability in (0, 1].
    func testRISERefusesAKeepProbabilityOutsideZeroToOne() throws {
        let (model, input, _) = try self.model("small_resnet", CPUBackend())
        for p in [0.0, -0.5, 1.5, .nan] {
            XCTAssertThrowsError(try RISE(model: model, masks: 8, keepProbability: p).attribute(input, target: .predicted)) {
                XCTAssertTrue("\($0)".contains("keepProbability"), "\($0)")
            }
        }
        XCTAssertNoThrow(try RISE(model: model, masks: 8, keepProbability: 1).attribute(input, target: .predicted))
    }

    /// One segment: the whole difference f(x) - f(baseline) is its value, nothing is sampled.
    func testKernelSHAPWithOneSegmentGivesItTheWholeDifference() throws {
        for (label, backend) in backends() {
            let (model, input, targets) = try self.model("small_resnet", backend)
            let a = try KernelSHAP(model: model, samples: 50, segmentation: .grid(rows: 1, columns: 1), seed: 7).attribute(input, target: .perImage(targets))
            XCTAssertEqual(a.diagnostics["samplesUsed"], [0, 0], label)
            XCTAssertEqual(a.diagnostics["fullyEnumerated"], [1, 1], label)
            XCTAssertEqual(a.diagnostics["controlVariate"], [0, 0], label)
            let logits = try model.logits(try model.backend.upload(input)), base = try model.logits(try model.backend.upload(Tensor(shape: input.shape)))
            for b in 0..<2 {
                let difference = Double(logits[b, targets[b]]) - Double(base[b, targets[b]])
                XCTAssertEqual(Double(a.raw!.scalars[b]), difference, accuracy: 1e-5 * max(1, abs(difference)), label)
                XCTAssertEqual(a.diagnostics["baseValue"]?[b] ?? .nan, Double(base[b, targets[b]]), accuracy: 1e-5, label)
            }
        }
    }

    func testKernelSHAPIsEfficientWhenSampled() throws {
        for (label, backend) in backends() {
            let (model, input, targets) = try self.model("small_resnet", backend)
            let a = try KernelSHAP(model: model, samples: 150, segmentation: .grid(rows: 5, columns: 8), seed: 7).attribute(input, target: .perImage(targets))
            XCTAssertEqual(a.diagnostics["fullyEnumerated"], [0, 0])
            let logits = try model.logits(try backend.upload(input))
            let base = try model.logits(try backend.upload(Tensor(shape: input.shape)))
            for b in 0..<2 {
                let phi = a.raw!.scalars[(b * 40)..<((b + 1) * 40)].reduce(0.0) { $0 + Double($1) }
                let difference = Double(logits[b, targets[b]]) - Double(base[b, targets[b]])
                XCTAssertEqual(phi, difference, accuracy: 1e-5 * max(1, abs(difference)), "efficiency on \(label), image \(b)")
            }
            let agreement = a.diagnostics["halfSplitRankCorrelation"]!
            XCTAssertTrue(agreement.allSatisfy { $0 >= -1 && $0 <= 1 }, "\(agreement)")
        }
    }

    func testShapleyAndLIMERecoverAnAdditiveModel() throws {
        for (label, backend) in backends() {
            let model = try additiveModel(backend)
            let input = Tensor.uniform([2, 3, 24, 24], in: -2...2, seed: 11)
            let segmentation = Segmentation.grid(rows: 3, columns: 3)
            // Each segment's contribution, measured directly: f(segment s alone) - f(nothing).
            let engine = PerturbationEngine(model: model)
            var contributions: [[Double]] = []
            for b in 0..<2 {
                let xb = try Tensor(shape: [1, 3, 24, 24], scalars: Array(input.scalars[(b * 3 * 576)..<((b + 1) * 3 * 576)]))
                let labels = try backend.upload(try segmentation.segment(xb, index: b).tensor)
                let rows = [[Bool](repeating: false, count: 9)] + (0..<9).map { s in (0..<9).map { $0 == s } }
                let v = try engine.evaluate(image: try backend.upload(xb), baseline: try backend.upload(Tensor(shape: [1, 3, 24, 24])), target: 2,
                                            count: rows.count) { MaskSpec.segments(labels: labels, rows: rows[$0], segmentCount: 9) }
                contributions.append((1...9).map { v[$0] - v[0] })
            }
            let expected = contributions.flatMap { $0 }
            let scale = expected.map(abs).max()!
            let exact = try ExactShapley(model: model, segmentation: segmentation).attribute(input, target: .index(2))
            let kernel = try KernelSHAP(model: model, samples: 100, segmentation: segmentation, seed: 3).attribute(input, target: .index(2))
            let lime = try LIME(model: model, samples: 300, featureSelection: .none, ridgeAlpha: 0, segmentation: segmentation).attribute(input, target: .index(2))
            for (what, got) in [("exact Shapley", exact), ("sampled KernelSHAP", kernel), ("LIME", lime)] {
                let g = doubles(got.raw!)
                for i in expected.indices { XCTAssertEqual(g[i], expected[i], accuracy: 2e-5 * scale, "\(what) segment \(i) on \(label)") }
            }
            for r2 in lime.diagnostics["r2"]! { XCTAssertEqual(r2, 1, accuracy: 1e-6) }
        }
    }

    func testLIMEFeatureSelectionKeepsTheStrongestSegments() throws {
        let model = try additiveModel(CPUBackend())
        let input = Tensor.uniform([1, 3, 24, 24], in: -2...2, seed: 5)
        let segmentation = Segmentation.grid(rows: 3, columns: 3)
        let full = try LIME(model: model, samples: 400, featureSelection: .none, ridgeAlpha: 0, segmentation: segmentation).attribute(input, target: .index(1))
        let strongest = doubles(full.raw!).indices.sorted { abs(full.raw!.scalars[$0]) > abs(full.raw!.scalars[$1]) }.prefix(3).sorted()
        for selection in [FeatureSelection.forwardSelection, .highestWeights, .auto] {
            let a = try LIME(model: model, samples: 400, featureSelection: selection, features: 3, ridgeAlpha: 0, segmentation: segmentation)
                .attribute(input, target: .index(1))
            let chosen = a.raw!.scalars.indices.filter { a.raw!.scalars[$0] != 0 }
            XCTAssertEqual(chosen, strongest, "\(selection)")
        }
    }

    // MARK: RISE

    /// The weighted sum of the masks is accumulated in blocks of a fixed size, so the map is the
    /// same bits whatever the forward batch (on a model whose forward does not depend on it).
    func testRISEIsTheSameBitsForEveryForwardBatch() throws {
        for (label, backend) in backends() {
            let (model, input, targets) = try self.model("small_resnet", backend)
            let maps = try [1, 3, 16, 100].map { batch in
                try RISE(model: model, masks: 100, gridSize: 4, seed: 2, perturbationsPerEval: batch).attribute(input, target: .perImage(targets)).map
            }
            for m in maps.dropFirst() { XCTAssertEqual(m, maps[0], label) }
        }
    }

    func testRISEEqualsAHostRecomputation() throws {
        for (label, backend) in backends() {
            let (model, input, targets) = try self.model("mobile_block", backend)
            // 140 masks: three blocks of the device's sums in each half (64, 6; 64, 6).
            let count = 140
            let rise = RISE(model: model, masks: count, gridSize: 5, seed: 9, perturbationsPerEval: 48)
            let a = try rise.attribute(input, target: .perImage(targets))
            // Host: masks from the description, composited and scored one batch, summed in float64.
            let spec = try rise.maskSpec(height: 40, width: 40)
            let plane = 1600
            var masks = [Double](repeating: 0, count: count * plane)
            for m in 0..<count { for p in 0..<plane { masks[m * plane + p] = try spec.hostValue(sample: m, y: p / 40, x: p % 40, height: 40, width: 40) } }
            for b in 0..<2 {
                let image = Array(input.scalars[(b * 3 * plane)..<((b + 1) * 3 * plane)])
                var batch = [Float](repeating: 0, count: count * 3 * plane)
                for m in 0..<count { for c in 0..<3 { for p in 0..<plane { batch[(m * 3 + c) * plane + p] = Float(masks[m * plane + p]) * image[c * plane + p] } } }
                let logits = try model.logits(try backend.upload(try Tensor(shape: [count, 3, 40, 40], scalars: batch)))
                var expected = [Double](repeating: 0, count: plane)
                for m in 0..<count {
                    let row = (0..<logits.shape[1]).map { Double(logits[m, $0]) }
                    let top = row.max()!
                    let p = exp(row[targets[b]] - top) / row.reduce(0) { $0 + exp($1 - top) }
                    for q in 0..<plane { expected[q] += p * masks[m * plane + q] / (Double(count) * 0.5) }
                }
                let got = a.map.scalars[(b * plane)..<((b + 1) * plane)].map(Double.init)
                XCTAssertLessThan(relativeError(got, expected), 1e-5, "RISE image \(b) on \(label)")
            }
            XCTAssertEqual(a.diagnostics["halfSplitRankCorrelation"]?.count, 2)
        }
    }

    // MARK: Determinism and batch independence

    /// `untilStable`: LIME stops at the first round that is settled enough and is then exactly LIME
    /// with that many samples; an unreachable target uses every sample and changes nothing.
    /// KernelSHAP stops after a round too, keeps efficiency exact, and with the target off is
    /// unchanged.
    func testUntilStableStopsAtASettledRound() throws {
        for (label, backend) in backends() {
            let (model, input, targets) = try self.model("small_resnet", backend)
            let segmentation = Segmentation.grid(rows: 4, columns: 5)
            let round = coalitionRound(samples: 400)
            XCTAssertEqual(round, 64)
            let early = try LIME(model: model, samples: 400, segmentation: segmentation, seed: 3, untilStable: 0).attribute(input, target: .perImage(targets))
            let usedEarly = try XCTUnwrap(early.diagnostics["samplesUsed"])
            XCTAssertEqual(usedEarly, [64, 64], "the first round agrees at all (a positive rank correlation), on \(label)")
            for b in 0..<2 {
                let one = try ExplainedModel.image(input, b)
                let short = try LIME(model: model, samples: Int(usedEarly[b]), segmentation: segmentation, seed: 3).attribute(one, target: .index(targets[b]))
                XCTAssertEqual(Array(try XCTUnwrap(early.raw).scalars[(b * 20)..<((b + 1) * 20)]), try XCTUnwrap(short.raw).scalars,
                               "the samples used are LIME's with that budget (image \(b), \(label))")
            }
            let all = try LIME(model: model, samples: 400, segmentation: segmentation, seed: 3).attribute(input, target: .perImage(targets))
            let never = try LIME(model: model, samples: 400, segmentation: segmentation, seed: 3, untilStable: 1).attribute(input, target: .perImage(targets))
            XCTAssertEqual(never.raw, all.raw, label)
            XCTAssertEqual(all.diagnostics["samplesUsed"], [400, 400], label)
            // A reachable target stops between the two, at a round whose agreement reaches it.
            let settled = try LIME(model: model, samples: 400, segmentation: segmentation, seed: 3, untilStable: 0.8).attribute(input, target: .perImage(targets))
            for b in 0..<2 {
                let used = try XCTUnwrap(settled.diagnostics["samplesUsed"]?[b]), agreement = try XCTUnwrap(settled.diagnostics["halfSplitRankCorrelation"]?[b])
                XCTAssertTrue(used == 400 || agreement >= 0.8, "image \(b) on \(label): \(used) samples, agreement \(agreement)")
                XCTAssertEqual(Int(used) % 64 == 0 || used == 400, true)
            }

            let logits = try model.logits(try backend.upload(input))
            let base = try model.logits(try backend.upload(Tensor(shape: input.shape)))
            let kernel = try KernelSHAP(model: model, samples: 600, segmentation: segmentation, seed: 2, untilStable: 0).attribute(input, target: .perImage(targets))
            let full = try KernelSHAP(model: model, samples: 600, segmentation: segmentation, seed: 2).attribute(input, target: .perImage(targets))
            let enumerated = KernelSHAP(model: model, samples: 600, seed: 2).sample(players: 20).enumerated
            XCTAssertEqual(kernel.diagnostics["samplesUsed"], [Double(enumerated + 64), Double(enumerated + 64)], label)
            XCTAssertEqual(full.diagnostics["samplesUsed"], [600, 600], label)
            XCTAssertNotEqual(kernel.raw, full.raw, label)
            for b in 0..<2 {
                let phi = try XCTUnwrap(kernel.raw).scalars[(b * 20)..<((b + 1) * 20)].reduce(0.0) { $0 + Double($1) }
                let difference = Double(logits[b, targets[b]]) - Double(base[b, targets[b]])
                XCTAssertEqual(phi, difference, accuracy: 1e-5 * max(1, abs(difference)), "efficiency after an early stop, image \(b), \(label)")
            }
            XCTAssertEqual(try KernelSHAP(model: model, samples: 600, segmentation: segmentation, seed: 2, untilStable: 1).attribute(input, target: .perImage(targets)).raw,
                           full.raw)
            XCTAssertThrowsError(try LIME(model: model, samples: 100, untilStable: 1.5).attribute(input, target: .predicted)) { error in
                guard case XAIError.invalidArgument("untilStable", _, _) = error else { return XCTFail("\(error)") }
            }
        }
    }

    /// A prefix of KernelSHAP's sampled rows is weighted as the sampler's state when it stopped
    /// there: the full prefix gives the fixed-budget weights, and every prefix sums to 1.
    func testKernelSHAPPrefixWeightsAreTheSamplersState() throws {
        let (model, _, _) = try self.model("small_resnet", CPUBackend())
        let shap = KernelSHAP(model: model, samples: 300, seed: 9)
        let c = shap.sample(players: 12)
        let (rows, weights, enumerated) = shap.coalitions(players: 12)
        XCTAssertEqual(c.rows, rows)
        XCTAssertEqual(c.weights(sampled: rows.count - enumerated), weights)
        for k in [0, 1, 17, 100, rows.count - enumerated] {
            XCTAssertEqual(c.weights(sampled: k).reduce(0, +), k == 0 ? c.weights(sampled: 0).reduce(0, +) : 1, accuracy: 1e-9, "prefix \(k)")
            XCTAssertEqual(c.weights(sampled: k).count, enumerated + k)
        }
        // With a budget too small to enumerate any size, a smaller budget draws the same stream and
        // stops at its own count: its coalitions and weights are the larger budget's prefix.
        let large = KernelSHAP(model: model, samples: 100, seed: 4).sample(players: 20)
        XCTAssertEqual(large.enumerated, 0)
        for k in [9, 37, 64] {
            let small = KernelSHAP(model: model, samples: k, seed: 4).coalitions(players: 20)
            XCTAssertEqual(small.enumerated, 0)
            XCTAssertEqual(small.rows, Array(large.rows[..<k]))
            let w = large.weights(sampled: k)
            for i in 0..<k { XCTAssertEqual(w[i], small.weights[i], accuracy: 1e-12, "prefix \(k), row \(i)") }
        }
    }

    /// At a fixed budget, leverage sampling gets closer to the exact Shapley values than kernel
    /// sampling, and the control variate (``CoalitionSurrogate``) at least twice as close as the plain fit (mean
    /// over seeds of the relative L2 error against ``ExactShapley``).
    func testLeverageSamplingAndTheControlVariateLowerTheErrorAtAFixedBudget() throws {
        let (model, input, targets) = try self.model("mobile_block", CPUBackend())
        let segmentation = Segmentation.grid(rows: 3, columns: 4)
        let exact = doubles(try XCTUnwrap(try ExactShapley(model: model, segmentation: segmentation).attribute(input, target: .perImage(targets)).raw))
        for samples in [60, 200] {
            func error(_ sampling: KernelSHAP.Sampling, controlVariate: Bool) throws -> Double {
                var total = 0.0
                for seed in 0..<12 {
                    let a = try KernelSHAP(model: model, samples: samples, segmentation: segmentation, seed: UInt64(seed), sampling: sampling,
                                           controlVariate: controlVariate).attribute(input, target: .perImage(targets))
                    total += relativeError(doubles(try XCTUnwrap(a.raw)), exact)
                    XCTAssertEqual(a.diagnostics["controlVariate"], targets.map { _ in controlVariate ? 1 : 0 }, "\(samples) samples")
                }
                return total / 12
            }
            let kernel = try error(.kernel, controlVariate: false), leverage = try error(.leverage, controlVariate: false)
            let controlled = try error(.kernel, controlVariate: true)
            print(String(format: "KernelSHAP vs exact Shapley, 12 players, %d samples: kernel sampling %.4f, leverage sampling %.4f, kernel sampling with the control variate %.4f (mean relative L2 over 12 seeds)",
                         samples, kernel, leverage, controlled))
            XCTAssertLessThan(leverage, kernel, "\(samples) samples")
            // Measured: 0.22x at 60 samples and 0.24x at 200 (without the ridge on the size-varying
            // effects, 0.73x at 60).
            XCTAssertLessThan(controlled, 0.5 * kernel, "\(samples) samples: the control variate at least halves the error")
        }
    }

    /// Numbering the segments differently permutes KernelSHAP's answer and changes nothing else,
    /// with the control variate as without it (its ridge must pull every segment's size-varying
    /// effect alike).
    func testKernelSHAPDoesNotDependOnHowTheSegmentsAreNumbered() throws {
        let m = 10
        var rng = SeededGenerator(seed: 43)
        let a = (0..<m).map { _ in Double(rng.nextGaussian()) }, c = (0..<m).map { _ in 6 * Double(rng.nextGaussian()) }
        let pairs = (0..<15).map { _ in (Int(rng.next() % UInt64(m)), Int(rng.next() % UInt64(m)), Double(rng.nextGaussian())) }
        func v(_ row: [Bool]) -> Double {
            let b = Double(row.filter { $0 }.count) / Double(m)
            var total = 3 * b * b * b
            for i in 0..<m where row[i] { total += a[i] + c[i] * b * b }
            for (i, j, w) in pairs where row[i] && row[j] { total += w * b }
            return total + (row[0] && row[1] && row[2] ? 1.5 : 0)
        }
        let model = try ExplainedModel(graph: try Models.load(fixturesDirectory + "/models/plain_cnn/model.onnx"), backend: CPUBackend())
        let (rows, weights, _) = KernelSHAP(model: model, samples: 300, seed: 5).coalitions(players: m)
        let order = [3, 7, 0, 9, 1, 5, 2, 8, 6, 4]  // segment i is numbered order[i]
        func renumbered(_ row: [Bool]) -> [Bool] {
            var r = [Bool](repeating: false, count: m)
            for i in 0..<m { r[order[i]] = row[i] }
            return r
        }
        let (full, empty) = (v([Bool](repeating: true, count: m)), v([Bool](repeating: false, count: m)))
        for controlVariate in [false, true] {
            let phi = KernelSHAP.estimate(rows, rows.map(v), weights, players: m, full: full, empty: empty, controlVariate: controlVariate)
            let other = KernelSHAP.estimate(rows.map(renumbered), rows.map(v), weights, players: m, full: full, empty: empty, controlVariate: controlVariate)
            XCTAssertEqual(phi.surrogate, controlVariate)
            let scale = phi.values.map(abs).max() ?? 1
            for i in 0..<m { XCTAssertEqual(other.values[order[i]], phi.values[i], accuracy: 1e-9 * scale, "segment \(i), control variate \(controlVariate)") }
        }
    }

    /// On a game of the surrogate's own form the control variate leaves no residual, so KernelSHAP
    /// returns the exact Shapley values from a few samples: this checks the surrogate's fit, its
    /// closed-form Shapley values and its pass through both ends (the size-varying game without
    /// the ridge, which would bias its `c_i`). The plain fit is not exact there.
    func testTheControlVariateIsExactOnGamesOfTheSurrogatesForm() throws {
        let m = 10
        var rng = SeededGenerator(seed: 41)
        func gaussians(_ n: Int) -> [Double] { (0..<n).map { _ in Double(rng.nextGaussian()) } }
        let (a, u, c) = (gaussians(m), gaussians(m + 1).map { 5 * $0 }, gaussians(m).map { 8 * $0 })
        let model = try ExplainedModel(graph: try Models.load(fixturesDirectory + "/models/plain_cnn/model.onnx"), backend: CPUBackend())
        for (samples, varying) in [(40, false), (300, true)] {
            func v(_ s: Int) -> Double {
                let size = s.nonzeroBitCount, b = (Double(size) - Double(m) / 2) / Double(m)
                var total = u[size]
                for i in 0..<m where s >> i & 1 == 1 { total += a[i] + (varying ? c[i] * b * b : 0) }
                return total
            }
            var factorial = [1.0]
            for i in 1...m { factorial.append(factorial[i - 1] * Double(i)) }
            var exact = [Double](repeating: 0, count: m)
            for s in 0..<(1 << m) where s.nonzeroBitCount < m {
                let w = factorial[s.nonzeroBitCount] * factorial[m - s.nonzeroBitCount - 1] / factorial[m]
                for i in 0..<m where s >> i & 1 == 0 { exact[i] += w * (v(s | 1 << i) - v(s)) }
            }
            let (rows, weights, _) = KernelSHAP(model: model, samples: samples, seed: 3).coalitions(players: m)
            let y = rows.map { row in v(row.enumerated().reduce(0) { $1.element ? $0 | 1 << $1.offset : $0 }) }
            let what = varying ? "size-varying game" : "additive game"
            let controlled = KernelSHAP.estimate(rows, y, weights, players: m, full: v((1 << m) - 1), empty: v(0), controlVariate: true,
                                                 ridge: varying ? 0 : CoalitionSurrogate.modulationRidge)
            XCTAssertTrue(controlled.surrogate, "\(samples) samples")
            // Without the ridge one direction of the c_i (their sum, against u) is free; the solver's
            // jitter settles it, which leaves about 1e-9.
            XCTAssertLessThan(relativeError(controlled.values, exact), 1e-7, "\(what), \(samples) samples")
            let plain = KernelSHAP.estimate(rows, y, weights, players: m, full: v((1 << m) - 1), empty: v(0), controlVariate: false)
            XCTAssertFalse(plain.surrogate)
            XCTAssertGreaterThan(relativeError(plain.values, exact), 1e-3, "the plain fit is not exact on the \(what)")
        }
        // Too few rows for the surrogate: the plain fit.
        let (rows, weights, _) = KernelSHAP(model: model, samples: 20, seed: 3).coalitions(players: m)
        XCTAssertFalse(KernelSHAP.estimate(rows, rows.map { _ in 1 }, weights, players: m, full: 1, empty: 0, controlVariate: true).surrogate)
    }

    func testSeededRunsRepeatAndBatchSizesAgree() throws {
        for (label, backend) in backends() {
            let (model, input, targets) = try self.model("mobile_block", backend)
            let segmentation = Segmentation.grid(rows: 4, columns: 4)
            func lime(_ batch: Int, _ seed: UInt64) throws -> Tensor {
                try LIME(model: model, samples: 64, segmentation: segmentation, seed: seed, perturbationsPerEval: batch).attribute(input, target: .perImage(targets)).raw!
            }
            XCTAssertEqual(try lime(16, 1), try lime(16, 1), label)
            XCTAssertLessThan(relativeError(doubles(try lime(16, 1)), doubles(try lime(5, 1))), 1e-6, label)
            XCTAssertNotEqual(try lime(16, 1), try lime(16, 2), label)
            func rise(_ batch: Int) throws -> Tensor { try RISE(model: model, masks: 30, seed: 4, perturbationsPerEval: batch).attribute(input, target: .perImage(targets)).map }
            XCTAssertEqual(try rise(8), try rise(8), label)
            XCTAssertLessThan(relativeError(doubles(try rise(8)), doubles(try rise(30))), 1e-6, label)
        }
    }

    func testPerturbationMethodsAgreeAcrossBackends() throws {
        guard let cl = TestBackends.openCL() else { return }
        let (cpuModel, input, targets) = try self.model("small_resnet", CPUBackend())
        let (clModel, _, _) = try self.model("small_resnet", cl)
        let segmentation = Segmentation.grid(rows: 4, columns: 4)
        let pairs: [(String, (ExplainedModel) throws -> Tensor)] = [
            ("lime", { try LIME(model: $0, samples: 50, segmentation: segmentation).attribute(input, target: .perImage(targets)).map }),
            ("kernelshap", { try KernelSHAP(model: $0, samples: 60, segmentation: segmentation).attribute(input, target: .perImage(targets)).map }),
            ("rise", { try RISE(model: $0, masks: 40).attribute(input, target: .perImage(targets)).map }),
        ]
        for (name, run) in pairs {
            XCTAssertLessThan(relativeError(doubles(try run(clModel)), doubles(try run(cpuModel))), 1e-4, name)
        }
    }

    func testExactShapleyRefusesTooManySegments() throws {
        let (model, input, targets) = try self.model("mobile_block", CPUBackend())
        XCTAssertThrowsError(try ExactShapley(model: model, segmentation: .grid(rows: 4, columns: 5)).attribute(input, target: .perImage(targets))) { error in
            XCTAssertTrue("\(error)".contains("kernelshap"), "\(error)")
        }
    }

    // MARK: Meaningful Perturbation

    func testMeaningfulPerturbationGradientMatchesFiniteDifferences() throws {
        for (label, backend) in backends() {
            let (model, input, targets) = try self.model("mobile_block", backend)
            for output in ScoreOutput.allCases {
                let mp = MeaningfulPerturbation(model: model, maskSize: 5, blurSigma: 3, output: output)
                let problem = try mp.problem(input, targets: targets)
                var rng = SeededGenerator(seed: 21)
                let masks = (0..<50).map { _ in 0.2 + 0.6 * Double(rng.nextUnitFloat()) }
                let analytic = try mp.objective(problem, masks: masks).gradient
                var numeric: [Double] = [], picked: [Double] = []
                for i in [0, 7, 12, 24, 31, 38, 44, 49] {
                    let h = 1e-2
                    var up = masks, down = masks
                    up[i] += h; down[i] -= h
                    let b = i / 25
                    numeric.append((try XCTUnwrap(mp.objective(problem, masks: up).loss)[b] - (try XCTUnwrap(mp.objective(problem, masks: down).loss)[b])) / (2 * h))
                    picked.append(analytic[i])
                }
                XCTAssertGreaterThan(numeric.map(abs).max()!, 1e-4, "degenerate")
                XCTAssertLessThan(relativeError(picked, numeric), 2e-2, "MP gradient (\(output)) on \(label): \(picked) vs \(numeric)")
            }
        }
    }

    func testMeaningfulPerturbationLowersTheScoreAndRepeats() throws {
        let (model, input, targets) = try self.model("small_resnet", CPUBackend())
        let mp = MeaningfulPerturbation(model: model, iterations: 40, maskSize: 8, blurSigma: 4, output: .logit)
        let a = try mp.attribute(input, target: .perImage(targets))
        XCTAssertEqual(a.map.shape, [2, 64, 64])
        XCTAssertEqual(a.raw!.shape, [2, 8, 8])
        for b in 0..<2 {
            XCTAssertLessThan(a.diagnostics["finalLoss"]![b], a.diagnostics["initialScore"]![b], "the objective went down for image \(b)")
            XCTAssertGreaterThan(a.diagnostics["deletedFraction"]![b], 0)
        }
        XCTAssertTrue(a.raw!.scalars.allSatisfy { (0...1).contains($0) })
        XCTAssertEqual(try mp.attribute(input, target: .perImage(targets)).map, a.map)
        // The first step scores the whole image (every mask cell 1) on the device: the clean
        // logit of the target, or its softmax in float64, also for a class the model does not
        // pick (image 1's runner-up).
        let clean = try model.logits(try model.backend.upload(input))
        let classes = clean.shape[1]
        let row1 = (0..<classes).map { clean[1, $0] }
        let runnerUp = (0..<classes).filter { $0 != row1.indices.max { row1[$0] < row1[$1] }! }.max { row1[$0] < row1[$1] }!
        let chosen = [targets[0], runnerUp]
        for output in ScoreOutput.allCases {
            let first = try MeaningfulPerturbation(model: model, iterations: 1, maskSize: 8, blurSigma: 4, output: output)
                .attribute(input, target: .perImage(chosen)).diagnostics["initialScore"]!
            for b in 0..<2 {
                let row = (0..<classes).map { clean[b, $0] }
                let expected = output == .logit ? Double(row[chosen[b]]) : ExplainedModel.probabilities(row)[chosen[b]]
                XCTAssertEqual(first[b], expected, accuracy: 1e-5 * max(1, abs(expected)), "\(output), image \(b), class \(chosen[b])")
            }
        }
    }

    // MARK: Superpixels

    func testSLICMatchesScikitImage() throws {
        for name in ["chelsea", "astronaut", "coffee"] {
            let image = try NPY.read(Self.fixtures + "/images/\(name).npy")
            let (h, w) = (image.shape[1], image.shape[2])
            for n in [70, 100] {
                let reference = try SegmentMap(height: h, width: w, ids: try NPY.read(Self.fixtures + "/images/\(name)_slic\(n).npy").integers("fixture"))
                let ours = try SLIC(segments: n).segment(image)
                let agreement = boundaryAgreement(ours, reference)
                print("SLIC \(name) n=\(n): \(ours.count) segments (scikit-image \(reference.count)), boundary F1 \(agreement), identical: \(ours == reference)")
                // Measured: identical partitions on all six (same counts, boundary F1 1.0).
                XCTAssertLessThanOrEqual(abs(ours.count - reference.count), 1, "\(name) n=\(n)")
                XCTAssertGreaterThan(agreement, 0.99, "\(name) n=\(n)")
                XCTAssertEqual(try SLIC(segments: n).segment(image), ours, "deterministic")
            }
        }
    }

    func testQuickshiftAndFelzenszwalbMatchScikitImage() throws {
        for name in ["chelsea", "astronaut", "coffee"] {
            let image = try NPY.read(Self.fixtures + "/images/\(name).npy")
            let (h, w) = (image.shape[1], image.shape[2])
            var cases: [(String, Segmentation)] = [("quickshift", .quickshift(Quickshift(valueRange: 0...255)))]
            for scale in [1, 100] { cases.append(("felzenszwalb\(scale)", .felzenszwalb(Felzenszwalb(scale: Double(scale), valueRange: 0...255)))) }
            for (file, segmentation) in cases {
                let reference = try SegmentMap(height: h, width: w, ids: try NPY.read(Self.fixtures + "/images/\(name)_\(file).npy").integers("fixture"))
                let ours = try segmentation.segment(try image.reshaped([1, 3, h, w]), index: 0)
                let agreement = boundaryAgreement(ours, reference)
                print("\(file) \(name): \(ours.count) segments (scikit-image \(reference.count)), boundary F1 \(agreement), identical: \(ours == reference)")
                // Measured: identical partitions on all nine.
                XCTAssertLessThanOrEqual(abs(ours.count - reference.count), 1, "\(file) \(name)")
                XCTAssertGreaterThan(agreement, 0.99, "\(file) \(name)")
            }
        }
    }

    /// F1 of boundary pixels (a pixel whose right or lower neighbour differs), a match being a
    /// boundary pixel of the other map within one pixel.
    func boundaryAgreement(_ a: SegmentMap, _ b: SegmentMap) -> Double {
        let (h, w) = (a.height, a.width)
        func edges(_ m: SegmentMap) -> [Bool] {
            (0..<(h * w)).map { p in
                let (y, x) = (p / w, p % w)
                return (x + 1 < w && m.labels[p] != m.labels[p + 1]) || (y + 1 < h && m.labels[p] != m.labels[p + w])
            }
        }
        let (ea, eb) = (edges(a), edges(b))
        func near(_ e: [Bool], _ p: Int) -> Bool {
            let (y, x) = (p / w, p % w)
            for dy in -1...1 { for dx in -1...1 where (0..<h).contains(y + dy) && (0..<w).contains(x + dx) && e[(y + dy) * w + x + dx] { return true } }
            return false
        }
        let precision = Double(ea.indices.filter { ea[$0] && near(eb, $0) }.count) / Double(max(1, ea.filter { $0 }.count))
        let recall = Double(eb.indices.filter { eb[$0] && near(ea, $0) }.count) / Double(max(1, eb.filter { $0 }.count))
        return 2 * precision * recall / max(precision + recall, 1e-12)
    }

    func testUserLabelMapsAndGridsAreRelabelledCompactly() throws {
        let labels = try Tensor(shape: [2, 3], scalars: [7, 7, 3, 9, 3, 3])
        let m = try Segmentation.labels(labels).segment(Tensor(shape: [1, 3, 2, 3]), index: 0)
        XCTAssertEqual(m.labels, [0, 0, 1, 2, 1, 1])
        XCTAssertEqual(m.count, 3)
        XCTAssertThrowsError(try Segmentation.labels(labels).segment(Tensor(shape: [1, 3, 3, 2]), index: 0))
        let grid = try Segmentation.grid(rows: 2, columns: 3).segment(Tensor(shape: [1, 3, 4, 6]), index: 0)
        XCTAssertEqual(grid.count, 6)
        XCTAssertEqual(grid.sizes, [4, 4, 4, 4, 4, 4])
    }
}
