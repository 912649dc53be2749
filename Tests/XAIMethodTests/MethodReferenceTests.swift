import Foundation
import XCTest
import XAI
import XAITestSupport
@testable import XAIMethods

/// Gradient and CAM methods against Captum and pytorch-grad-cam (Tools/make_method_fixtures.py),
/// on every backend, plus the axioms: IG completeness, Grad-CAM == CAM on a GAP + linear head,
/// batch == one by one, internal batch size and repeated runs do not change results.
final class MethodReferenceTests: XCTestCase {
    struct Case {
        let name: String
        let layer: String
        let input: Tensor
        let targets: [Int]
        let graph: Graph
        func reference(_ file: String) throws -> Tensor { try NPY.read(fixturesDirectory + "/methods/\(name)/\(file).npy") }
    }

    static let cases: [Case] = {
        let models = fixturesDirectory + "/models"
        let manifest = try! JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: models + "/manifest.json"))) as! [String: Any]
        let entries = manifest["models"] as! [String: [String: Any]]
        return ["small_resnet", "mobile_block"].map { name in
            Case(name: name, layer: (entries[name]!["tap_values"] as! [String])[1],
                 input: try! NPY.read("\(models)/\(name)/input.npy"), targets: try! NPY.read("\(models)/\(name)/target.npy").integers("fixture"),
                 graph: try! ONNXImporter.load(path: "\(models)/\(name)/model.onnx").optimized())
        }
    }()

    func check(_ got: Tensor, _ expected: Tensor, _ what: String, tolerance: Double = 1e-3, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.shape.count, expected.shape.count, "\(what): \(got.shape) vs \(expected.shape)", file: file, line: line)
        guard got.shape.count == expected.shape.count else { return }
        XCTAssertLessThan(relativeL2(doubles(got), doubles(expected)), tolerance, what, file: file, line: line)
    }

    func testGradientMethodsMatchCaptum() throws {
        for c in Self.cases {
            for (label, backend) in TestBackends.all() where label != "cpu-im2col" {
                let model = try ExplainedModel(graph: c.graph, backend: backend)
                let target = Target.perImage(c.targets)
                let saliency = try Saliency(model: model).attribute(c.input, target: target)
                let absolute = try Tensor(shape: saliency.raw!.shape, scalars: saliency.raw!.scalars.map(abs))
                check(absolute, try c.reference("saliency"), "saliency \(c.name) on \(label)")
                XCTAssertEqual(saliency.targets, c.targets)
                check(try InputXGradient(model: model).attribute(c.input, target: target).raw!, try c.reference("inputxgrad"), "inputxgrad \(c.name) on \(label)")
                for rule in IntegrationRule.allCases {
                    var raw = try IntegratedGradients(model: model, steps: 16, rule: rule).attribute(c.input, target: target).raw!
                    if rule == .trapezoid {
                        // Captum's trapezoid weights sum to (n - 1) / n; ours to 1.
                        raw = try Tensor(shape: raw.shape, scalars: raw.scalars.map { $0 * 15 / 16 })
                    }
                    check(raw, try c.reference("ig_\(rule.rawValue)"), "ig \(rule) \(c.name) on \(label)")
                }
            }
        }
    }

    func testCAMFamilyMatchesCaptumAndPytorchGradCam() throws {
        for c in Self.cases {
            for (label, backend) in TestBackends.all() where label != "cpu-im2col" {
                let model = try ExplainedModel(graph: c.graph, backend: backend)
                let target = Target.perImage(c.targets)
                let unclipped = try GradientCAM(model: model, variant: .gradCAM, layer: c.layer, relu: false).attribute(c.input, target: target)
                check(unclipped.raw!, try c.reference("layergradcam"), "LayerGradCam \(c.name) on \(label)")
                for variant in CAMVariant.allCases {
                    let a = try GradientCAM(model: model, variant: variant, layer: c.layer).attribute(c.input, target: target)
                    check(a.raw!, try c.reference(variant.rawValue), "\(variant) \(c.name) on \(label)")
                    XCTAssertEqual(a.map.shape, [c.input.shape[0], c.input.shape[2], c.input.shape[3]])
                }
            }
        }
    }

    func testScoreCAMMatchesPytorchGradCam() throws {
        for c in Self.cases {
            for (label, backend) in TestBackends.all() where label != "cpu-im2col" {
                let model = try ExplainedModel(graph: c.graph, backend: backend)
                for batch in [5, 64] {
                    let a = try ScoreCAM(model: model, layer: c.layer, internalBatchSize: batch).attribute(c.input, target: .perImage(c.targets))
                    check(a.raw!, try c.reference("scorecam"), "scorecam \(c.name) on \(label), batch \(batch)")
                }
            }
        }
    }

    func testGradCAMPlusPlusRefusesASmoothPath() throws {
        let c = Self.cases[1]  // mobile_block: the expand layer feeds a squeeze-excitation (sigmoid, product)
        let model = try ExplainedModel(graph: c.graph, backend: CPUBackend())
        let early = GradientCAM(model: model, variant: .gradCAMPlusPlus, layer: "/expand/expand.2/Clip_output_0")
        XCTAssertThrowsError(try early.attribute(c.input, target: .perImage(c.targets))) { error in
            XCTAssertTrue("\(error)".contains("gradcampp") && "\(error)".contains("node '"), "\(error)")
        }
        // validate() (what the CLI and the registry run before the first image) refuses it too.
        XCTAssertThrowsError(try early.validate()) { XCTAssertTrue("\($0)".contains("node '"), "\($0)") }
        XCTAssertNoThrow(try GradientCAM(model: model, variant: .gradCAMPlusPlus, layer: c.layer).validate())
    }

    func testGradCAMPlusPlusOnTheProbabilityMatchesFiniteDifferences() throws {
        // An independent computation: the derivatives of p_c along one activation, by finite
        // differences of the softmax of the head's logits, then the Grad-CAM++ weights from them.
        let c = Self.cases[0]  // small_resnet: layer2 -> GlobalAveragePool -> Flatten -> Gemm
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: c.graph, backend: backend)
            let method = GradientCAM(model: model, variant: .gradCAMPlusPlus, plusPlusScore: .probability)
            let got = try method.attribute(c.input, target: .perImage(c.targets)).raw!
            let (layer, weight) = try CAM(model: model).head()
            let pass = try model.executor.forward(try backend.upload(c.input), keep: [layer])
            let a = try backend.download(pass.kept[layer]!)
            let logits = try backend.download(pass.outputs[model.outputName]!)
            let (n, k, h, w) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3])
            let classes = weight.shape[0], plane = h * w
            var expected = [Double](repeating: 0, count: n * plane)
            for b in 0..<n {
                let z = (0..<classes).map { Double(logits[b, $0]) }
                for ch in 0..<k {
                    let u = (0..<classes).map { Double(weight.scalars[$0 * k + ch]) / Double(plane) }
                    func p(_ t: Double) -> Double {
                        let shifted = zip(z, u).map { $0 + t * $1 }
                        let top = shifted.max()!
                        let e = shifted.map { exp($0 - top) }
                        return e[c.targets[b]] / e.reduce(0, +)
                    }
                    let step = 0.02 / u.map(abs).max()!
                    let d1 = (p(step) - p(-step)) / (2 * step)
                    let d2 = (p(step) - 2 * p(0) + p(-step)) / (step * step)
                    let d3 = (p(2 * step) - 2 * p(step) + 2 * p(-step) - p(-2 * step)) / (2 * step * step * step)
                    let sum = (0..<plane).reduce(0.0) { $0 + Double(a.scalars[(b * k + ch) * plane + $1]) }
                    let alpha = d2 / (2 * d2 + sum * d3)
                    for q in 0..<plane { expected[b * plane + q] += alpha * max(d1, 0) * Double(plane) * Double(a.scalars[(b * k + ch) * plane + q]) }
                }
            }
            XCTAssertLessThan(relativeL2(doubles(got), expected.map { max($0, 0) }), 1e-3, "Grad-CAM++ on the probability, \(label)")
        }
        // The probability form needs the layer that feeds the pooled linear head.
        let model = try ExplainedModel(graph: Self.cases[1].graph, backend: CPUBackend())
        XCTAssertThrowsError(try GradientCAM(model: model, variant: .gradCAMPlusPlus, layer: "/expand/expand.2/Clip_output_0",
                                             plusPlusScore: .probability).validate())
    }

    func testSeveralClassesInOneCallEqualSeparateCalls() throws {
        let c = Self.cases[0]
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: c.graph, backend: backend)
            let methods: [any AttributionMethod] = [Saliency(model: model), IntegratedGradients(model: model, steps: 8), GradientCAM(model: model)]
            for method in methods {
                let both = try method.attribute(c.input, classes: [1, 3])
                XCTAssertEqual(both.targets, [1, 3, 1, 3], label)
                let plane = both.map.shape.count / 4
                for (b, k) in [(0, 1), (0, 3), (1, 1), (1, 3)].enumerated().map({ ($0.element.0, $0.element.1) }) {
                    let single = try method.attribute(try ExplainedModel.image(c.input, b), target: .index(k)).map
                    let row = b * 2 + (k == 1 ? 0 : 1)
                    check(try Tensor(shape: single.shape, scalars: Array(both.map.scalars[(row * plane)..<((row + 1) * plane)])), single,
                          "\(method.name) image \(b) class \(k) on \(label)", tolerance: 1e-5)
                }
            }
        }
    }

    func testDefaultCAMLayerIsTheLastBeforeGlobalPooling() throws {
        for c in Self.cases {
            let model = try ExplainedModel(graph: c.graph, backend: CPUBackend())
            XCTAssertEqual(try GradientCAM(model: model).resolvedLayer(), c.layer, c.name)
        }
    }

    func testIntegratedGradientsCompleteness() throws {
        for c in Self.cases {
            for (label, backend) in TestBackends.all() where label != "cpu-im2col" {
                let model = try ExplainedModel(graph: c.graph, backend: backend)
                let a = try IntegratedGradients(model: model, steps: 64, rule: .gaussLegendre).attribute(c.input, target: .perImage(c.targets))
                for (delta, difference) in zip(a.diagnostics["completenessDelta"]!, a.diagnostics["outputDifference"]!) {
                    XCTAssertGreaterThan(abs(difference), 1e-3, "degenerate case")
                    XCTAssertLessThan(delta, 0.01 * abs(difference), "\(c.name) on \(label): |sum - (f(x) - f(0))| = \(delta) of \(difference)")
                }
            }
        }
    }

    func testGradCAMEqualsCAMOnGlobalPoolingLinearHead() throws {
        let c = Self.cases[0]  // small_resnet: layer2 -> GlobalAveragePool -> Flatten -> Gemm
        for (label, backend) in TestBackends.all() where label != "cpu-im2col" {
            let model = try ExplainedModel(graph: c.graph, backend: backend)
            let cam = try CAM(model: model, relu: false).attribute(c.input, target: .perImage(c.targets))
            let grad = try GradientCAM(model: model, relu: false).attribute(c.input, target: .perImage(c.targets))
            // Grad-CAM's weights are the classifier row divided by the h*w positions it averages.
            let positions = Float(grad.raw!.shape[1] * grad.raw!.shape[2])
            check(try Tensor(shape: grad.raw!.shape, scalars: grad.raw!.scalars.map { $0 * positions }), cam.raw!, "Grad-CAM vs CAM on \(label)", tolerance: 1e-5)
        }
    }

    func testBatchEqualsOneByOneAndRunsRepeat() throws {
        let c = Self.cases[0]
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: c.graph, backend: backend)
            let methods: [any AttributionMethod] = [Saliency(model: model), IntegratedGradients(model: model, steps: 8), GradientCAM(model: model)]
            for m in methods {
                let batch = try m.attribute(c.input, target: .perImage(c.targets))
                XCTAssertEqual(try m.attribute(c.input, target: .perImage(c.targets)).map, batch.map, "\(m.name) on \(label) is not repeatable")
                let per = batch.map.shape.count / 2
                for b in 0..<2 {
                    let one = try m.attribute(try Tensor(shape: Shape([1] + c.input.shape.dims.dropFirst()),
                                                         scalars: Array(c.input.scalars[(b * c.input.shape.count / 2)..<((b + 1) * c.input.shape.count / 2)])),
                                              target: .index(c.targets[b]))
                    XCTAssertLessThan(relativeL2(doubles(one.map), batch.map.scalars[(b * per)..<((b + 1) * per)].map(Double.init)), 1e-5, "\(m.name) image \(b) on \(label)")
                }
            }
        }
    }

    func testSmoothGradMatchesReferenceWithTheSameNoise() throws {
        for c in Self.cases {
            let noise = try c.reference("smoothgrad_noise")
            for (label, backend) in TestBackends.all() where label != "cpu-im2col" {
                let model = try ExplainedModel(graph: c.graph, backend: backend)
                for batch in [6, 4] {
                    let a = try SmoothGrad(base: Saliency(model: model), samples: 6, internalBatchSize: batch, noise: noise)
                        .attribute(c.input, target: .perImage(c.targets))
                    check(a.raw!, try c.reference("smoothgrad"), "smoothgrad \(c.name) on \(label), internal batch \(batch)")
                }
            }
        }
    }

    /// `absolute` averages the gradients' magnitudes (Captum's NoiseTunnel over Saliency with
    /// abs=True): the mean of |gradient| over the same noisy copies, each explained alone.
    func testAbsoluteSmoothGradAveragesTheGradientMagnitudes() throws {
        let c = Self.cases[0]
        let noise = try c.reference("smoothgrad_noise")
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: c.graph, backend: backend)
            let level: Float = 0.2
            let a = try SmoothGrad(base: Saliency(model: model), samples: 6, noiseLevel: level, internalBatchSize: 4, absolute: true, noise: noise)
                .attribute(c.input, target: .perImage(c.targets)).raw!
            let n = c.input.shape[0], per = c.input.shape.count / n
            var expected = [Double](repeating: 0, count: n * per)
            for b in 0..<n {
                let image = Array(c.input.scalars[(b * per)..<((b + 1) * per)])
                let sigma = level * ((image.max() ?? 0) - (image.min() ?? 0))
                for s in 0..<6 {
                    let z = noise.scalars[((b * 6) + s) * per..<((b * 6) + s + 1) * per]
                    let copy = Tensor(unchecked: Shape([1] + c.input.shape.dims.dropFirst()), zip(image, z).map { $0 + sigma * $1 })
                    let g = try Saliency(model: model).attribute(copy, target: .index(c.targets[b])).raw!
                    for i in 0..<per { expected[b * per + i] += abs(Double(g.scalars[i])) / 6 }
                }
            }
            XCTAssertLessThan(relativeL2(doubles(a), expected), 1e-6, label)
            let signed = try SmoothGrad(base: Saliency(model: model), samples: 6, noiseLevel: level, noise: noise).attribute(c.input, target: .perImage(c.targets)).raw!
            XCTAssertGreaterThan(relativeL2(doubles(signed), expected), 1e-2, "the signed mean differs on \(label)")
        }
    }

    func testSmoothGradVariantsAreSeededAndConsistent() throws {
        let c = Self.cases[0]
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: c.graph, backend: backend)
            func run(_ kind: SmoothGrad.Kind, seed: UInt64) throws -> Tensor {
                try SmoothGrad(base: InputXGradient(model: model), kind: kind, samples: 5, seed: seed).attribute(c.input, target: .perImage(c.targets)).raw!
            }
            let mean = try run(.smoothGrad, seed: 1), squared = try run(.squared, seed: 1), variance = try run(.varGrad, seed: 1)
            XCTAssertEqual(mean, try run(.smoothGrad, seed: 1), "same seed, same device: identical on \(label)")
            XCTAssertNotEqual(mean, try run(.smoothGrad, seed: 2), label)
            // VarGrad = E[a^2] - E[a]^2 for the same samples.
            let expected = zip(squared.scalars, mean.scalars).map { Double($0) - Double($1) * Double($1) }
            XCTAssertLessThan(relativeL2(doubles(variance), expected), 1e-4, label)
            XCTAssertTrue(variance.scalars.allSatisfy { $0 >= -1e-6 }, label)
        }
    }

    func testInternalBatchSizeDoesNotChangeResults() throws {
        // Bit for bit: path and noise samples are summed on the host in a fixed order, and the
        // backends compute each image of a batch the same way whatever the batch. Except oneDNN's
        // Winograd (the CPU's default `auto` policy), which picks its kernel and blocking per
        // minibatch (F(2x2, 3x3) for inference at small batches, F(4x4, 3x3) at larger ones):
        // there results agree to rounding, and bit for bit under the direct policy.
        var backends = TestBackends.all().filter { $0.0 == "cpu" || $0.0 == "opencl" }.map { ($0.0, $0.1, true) }
        backends.append(("cpu direct", CPUBackend(convolutionPolicy: .direct), true))
        if let i = backends.firstIndex(where: { $0.0 == "cpu" }) { backends[i].2 = false }
        for c in Self.cases {
          for (label, backend, bitwise) in backends {
            let model = try ExplainedModel(graph: c.graph, backend: backend)
            let reference = try IntegratedGradients(model: model, steps: 12, internalBatchSize: 12).attribute(c.input, target: .perImage(c.targets))
            let smooth = try SmoothGrad(base: Saliency(model: model), samples: 7, internalBatchSize: 7, seed: 3).attribute(c.input, target: .perImage(c.targets))
            func same(_ a: Tensor, _ b: Tensor) -> Bool { bitwise ? a == b : relativeL2(doubles(a), doubles(b)) < 1e-5 }
            for size in [1, 5] {
                let other = try IntegratedGradients(model: model, steps: 12, internalBatchSize: size).attribute(c.input, target: .perImage(c.targets))
                XCTAssertTrue(same(other.raw!, reference.raw!), "IG \(c.name) on \(label), internal batch \(size)")
                let s = try SmoothGrad(base: Saliency(model: model), samples: 7, internalBatchSize: size, seed: 3).attribute(c.input, target: .perImage(c.targets))
                XCTAssertTrue(same(s.raw!, smooth.raw!), "SmoothGrad \(c.name) on \(label), internal batch \(size)")
            }
          }
        }
    }

    func testIntegratedGradientsIsCompleteForEveryBaseline() throws {
        let c = Self.cases[0]
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: c.graph, backend: backend)
            let baselines: [Baseline] = [.channelMean, .blurred(sigma: 3), .perChannel([-1, 0.5, 2])]
            for baseline in baselines {
                let a = try IntegratedGradients(model: model, steps: 64).attribute(c.input, target: .perImage(c.targets), baseline: baseline)
                for (delta, difference) in zip(a.diagnostics["completenessDelta"]!, a.diagnostics["outputDifference"]!) {
                    XCTAssertGreaterThan(abs(difference), 1e-3, "degenerate case")
                    XCTAssertLessThan(delta, 0.01 * abs(difference), "\(baseline) on \(label)")
                }
            }
            // Noise gives a rough path and a small f(x) - f(baseline) (0.03-0.12 here): the check is
            // that the delta converges (measured: 0.0145 at 64 steps, 0.0015 at 256).
            let noise = Baseline.uniformNoise(low: -1, high: 1, seed: 2)
            let coarse = try IntegratedGradients(model: model, steps: 64).attribute(c.input, target: .perImage(c.targets), baseline: noise)
            let fine = try IntegratedGradients(model: model, steps: 256).attribute(c.input, target: .perImage(c.targets), baseline: noise)
            for (d64, d256) in zip(coarse.diagnostics["completenessDelta"]!, fine.diagnostics["completenessDelta"]!) {
                XCTAssertLessThan(d256, 0.25 * d64, "noise baseline on \(label)")
                XCTAssertLessThan(d256, 2e-3, "noise baseline on \(label)")
            }
        }
    }

    func testBaselinesAreWhatTheyClaim() throws {
        let c = Self.cases[0]
        let model = try ExplainedModel(graph: c.graph, backend: CPUBackend())
        let image = try ExplainedModel.image(c.input, 0)
        let plane = image.shape.count / 3
        let mean = try model.baselineTensor(.channelMean, for: image)
        for ch in 0..<3 {
            let expected = image.scalars[(ch * plane)..<((ch + 1) * plane)].reduce(0.0) { $0 + Double($1) } / Double(plane)
            XCTAssertEqual(Double(mean.scalars[ch * plane + 17]), expected, accuracy: 1e-5)
        }
        // A blur keeps each channel's mean (reflected edges) and lowers the variation.
        let blurred = try model.baselineTensor(.blurred(sigma: 2), for: image)
        func variation(_ t: Tensor) -> Double { (1..<plane).reduce(0.0) { $0 + Double(abs(t.scalars[$1] - t.scalars[$1 - 1])) } }
        XCTAssertLessThan(variation(blurred), 0.5 * variation(image))
        XCTAssertEqual(blurred.scalars[0..<plane].reduce(0.0) { $0 + Double($1) } / Double(plane),
                       image.scalars[0..<plane].reduce(0.0) { $0 + Double($1) } / Double(plane), accuracy: 0.05)
        let noise = try model.baselineTensor(.uniformNoise(low: -1, high: 1, seed: 4), for: image)
        XCTAssertTrue(noise.scalars.allSatisfy { (-1...1).contains($0) })
        XCTAssertEqual(noise, try model.baselineTensor(.uniformNoise(low: -1, high: 1, seed: 4), for: image))
    }
}
