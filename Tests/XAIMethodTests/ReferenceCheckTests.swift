import Foundation
import XCTest
import XAI
import XAITestSupport

/// Checks against independent implementations for what the suite once left to itself: preprocessing
/// against torchvision, Integrated Gradients with a non-zero baseline and odd step counts against
/// Captum, the Grad-CAM family's map at input resolution against pytorch-grad-cam, LIME's sample
/// weights against lime, and a realistic-size model against onnxruntime and PyTorch. Fixtures from
/// Tools/make_reference_checks.py.
final class ReferenceCheckTests: XCTestCase {
    func json(_ path: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    // MARK: Preprocessing

    /// Resize (shorter side, long side truncated), centre crop (torchvision's rounding, zero padding
    /// where the crop is larger), ToTensor and ImageNet Normalize, on non-square pictures and a
    /// non-square crop; and the box the crop covers in the original picture.
    func testPreprocessingMatchesTorchvision() throws {
        let folder = fixturesDirectory + "/preprocessing"
        let cases = try XCTUnwrap(try json(folder + "/manifest.json")["cases"] as? [String: [String: Any]])
        XCTAssertEqual(cases.count, 6)
        for (name, c) in cases.sorted(by: { $0.key < $1.key }) {
            let picture = try RGBImage.read(folder + "/\(try XCTUnwrap(c["picture"] as? String)).png")
            let crop = try XCTUnwrap(c["crop_hw"] as? [Int])
            var prep = Preprocessing.imagenet
            prep.resize = try XCTUnwrap(c["resize"] as? Int)
            let (tensor, _, placement) = try prep.apply(picture, height: crop[0], width: crop[1])
            let expected = try NPY.read(folder + "/\(try XCTUnwrap(c["file"] as? String))")
            XCTAssertEqual(tensor.shape.dims, [1] + expected.shape.dims, name)
            // The resize is Pillow's, fixed-point arithmetic included, so every pixel is the same.
            let worst = zip(tensor.scalars, expected.scalars).map { abs(Double($0) - Double($1)) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(worst, 1e-6, "\(name): largest difference \(worst)")
            let box = try XCTUnwrap(c["crop_box_original"] as? [String: Double])
            for (got, key) in [(placement.left, "left"), (placement.top, "top"), (placement.width, "width"), (placement.height, "height")] {
                XCTAssertEqual(got, try XCTUnwrap(box[key]), accuracy: 1e-9, "\(name) placement \(key)")
            }
        }
    }

    /// Swapping two channels of the statistics must fail the comparison (the ImageNet means differ
    /// per channel, unlike the demo model's).
    func testPreprocessingChannelOrderIsChecked() throws {
        let folder = fixturesDirectory + "/preprocessing"
        let picture = try RGBImage.read(folder + "/landscape.png")
        var swapped = Preprocessing(resize: 224, mean: [0.406, 0.456, 0.485], std: [0.225, 0.224, 0.229])
        let (tensor, _, _) = try swapped.apply(picture, height: 224, width: 224)
        let expected = try NPY.read(folder + "/landscape_imagenet_224_224.npy")
        let worst = zip(tensor.scalars, expected.scalars).map { abs(Double($0) - Double($1)) }.max() ?? 0
        XCTAssertGreaterThan(worst, 0.1)
        swapped.resize = nil
        XCTAssertNoThrow(try swapped.apply(picture, height: 56, width: 72))
    }

    // MARK: Integrated Gradients

    func testIntegrationRulesAreQuadratures() throws {
        for n in [1, 2, 3, 4, 7, 8, 25, 50] {
            for rule in IntegrationRule.allCases where n >= rule.minimumSteps {
                let (alphas, weights) = try rule.nodes(n)
                XCTAssertEqual(alphas.count, n, "\(rule) \(n)")
                XCTAssertEqual(weights.reduce(0, +), 1, accuracy: 1e-12, "\(rule) \(n): weights sum to 1")
                XCTAssertTrue(alphas.allSatisfy { (0...1).contains($0) }, "\(rule) \(n): nodes in [0, 1]")
                XCTAssertEqual(alphas, alphas.sorted(), "\(rule) \(n): ascending")
            }
            // Gauss-Legendre integrates polynomials up to degree 2n - 1 exactly on [0, 1]: x^d -> 1 / (d + 1).
            let (x, w) = try IntegrationRule.gaussLegendre.nodes(n)
            for d in 0...(2 * n - 1) {
                let q = zip(x, w).reduce(0.0) { $0 + $1.1 * pow($1.0, Double(d)) }
                XCTAssertEqual(q, 1 / Double(d + 1), accuracy: 1e-12, "Gauss-Legendre \(n) nodes, degree \(d)")
            }
            // ... and not degree 2n (visible for few nodes; the error vanishes quickly with n).
            if n <= 4 {
                let q = zip(x, w).reduce(0.0) { $0 + $1.1 * pow($1.0, Double(2 * n)) }
                XCTAssertGreaterThan(abs(q - 1 / Double(2 * n + 1)), 1e-6, "Gauss-Legendre \(n) nodes, degree \(2 * n)")
            }
            // The midpoint rule is exact for degree 1 at any n, and the trapezoid rule puts the ends at 0 and 1.
            let (mx, mw) = try IntegrationRule.middle.nodes(n)
            XCTAssertEqual(zip(mx, mw).reduce(0.0) { $0 + $1.1 * $1.0 }, 0.5, accuracy: 1e-12)
            if n >= 2 {
                let (tx, _) = try IntegrationRule.trapezoid.nodes(n)
                XCTAssertEqual(tx.first, 0)
                XCTAssertEqual(tx.last, 1)
            }
        }
        // Captum's left and right Riemann nodes.
        XCTAssertEqual(try IntegrationRule.left.nodes(4).alphas, [0, 0.25, 0.5, 0.75])
        XCTAssertEqual(try IntegrationRule.right.nodes(4).alphas, [0.25, 0.5, 0.75, 1])
    }

    /// Captum's IntegratedGradients with a random (non-zero) baseline, at odd step counts.
    func testIntegratedGradientsWithABaselineMatchCaptum() throws {
        for name in ["small_resnet", "mobile_block"] {
            let models = fixturesDirectory + "/models/\(name)", methods = fixturesDirectory + "/methods/\(name)"
            let graph = try Models.load(models + "/model.onnx")
            let input = try NPY.read(models + "/input.npy")
            let targets = try NPY.read(models + "/target.npy").integers("target")
            let baseline = try NPY.read(methods + "/ig_baseline.npy")
            let manifest = try XCTUnwrap(try json(methods + "/ig_baseline.json")["cases"] as? [String: [String: Any]])
            for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
                let model = try ExplainedModel(graph: graph, backend: backend)
                for (rule, steps) in [(IntegrationRule.gaussLegendre, 7), (.gaussLegendre, 25), (.middle, 7), (.middle, 25), (.left, 7)] {
                    let key = "\(rule == .gaussLegendre ? "gausslegendre" : rule.rawValue)_\(steps)"
                    let a = try IntegratedGradients(model: model, steps: steps, rule: rule, internalBatchSize: 5)
                        .attribute(input, target: .perImage(targets), baseline: .tensor(baseline))
                    let expected = try NPY.read(methods + "/ig_baseline_\(key).npy")
                    XCTAssertLessThan(relativeL2(doubles(try XCTUnwrap(a.raw)), doubles(expected)), 1e-3, "ig \(key) \(name) on \(label)")
                    // Captum's convergence delta is (sum of attributions) - (f(x) - f(baseline)), signed.
                    let deltas = try XCTUnwrap(manifest[key]?["delta"] as? [Double])
                    let differences = try XCTUnwrap(a.diagnostics["outputDifference"])
                    for b in 0..<2 {
                        let sum = a.raw!.scalars[(b * a.raw!.shape.count / 2)..<((b + 1) * a.raw!.shape.count / 2)].reduce(0.0) { $0 + Double($1) }
                        XCTAssertEqual(sum - differences[b], deltas[b], accuracy: 2e-3 * max(1, abs(differences[b])), "delta \(key) image \(b)")
                    }
                }
            }
        }
    }

    // MARK: CAM at input resolution

    /// The map users see: pytorch-grad-cam min-max scales the CAM and resizes it with OpenCV's
    /// bilinear filter; the same scaling of our upsampled map must give the same picture, on a
    /// non-square input.
    func testCAMMapsAtInputResolutionMatchPytorchGradCam() throws {
        let folder = fixturesDirectory + "/cam_resized"
        let manifest = try json(folder + "/manifest.json")
        let layer = try XCTUnwrap(manifest["layer_value"] as? String)
        let graph = try Models.load(folder + "/model.onnx")
        let input = try NPY.read(folder + "/input.npy")
        let targets = try NPY.read(folder + "/target.npy").integers("target")
        XCTAssertEqual(input.shape, [2, 3, 40, 56])
        func minMax(_ v: ArraySlice<Float>) -> [Double] {
            let lo = Double(v.min() ?? 0), hi = Double(v.max() ?? 0)
            return v.map { (Double($0) - lo) / (1e-7 + hi - lo) }
        }
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: graph, backend: backend)
            for variant in CAMVariant.allCases {
                let a = try GradientCAM(model: model, variant: variant, layer: layer).attribute(input, target: .perImage(targets))
                XCTAssertEqual(a.map.shape, [2, 40, 56])
                let raw = try NPY.read(folder + "/\(variant.rawValue)_raw.npy")
                XCTAssertLessThan(relativeL2(doubles(try XCTUnwrap(a.raw)), doubles(raw)), 1e-3, "\(variant) raw on \(label)")
                let expected = try NPY.read(folder + "/\(variant.rawValue)_resized.npy")
                for b in 0..<2 {
                    let plane = 40 * 56
                    let got = minMax(a.map.scalars[(b * plane)..<((b + 1) * plane)])
                    let want = expected.scalars[(b * plane)..<((b + 1) * plane)].map(Double.init)
                    let worst = zip(got, want).map { abs($0 - $1) }.max() ?? .infinity
                    XCTAssertLessThan(worst, 2e-3, "\(variant) image \(b) at input resolution on \(label)")
                    // H and W transposed would not pass.
                    XCTAssertNotNil(mismatch(try Tensor(shape: [1, 1, 40, 56], scalars: got.map(Float.init)).transposedHW().scalars.map(Double.init),
                                             want, rtol: 0, atol: 1e-2), "\(variant): a transposed map passed")
                }
            }
        }
    }

    // MARK: LIME and KernelSHAP weights

    /// lime's sample weights (an exponential kernel on the cosine distance to the full image),
    /// recorded inside lime's own explain_instance.
    func testLIMEWeightsMatchLime() throws {
        let folder = fixturesDirectory + "/lime"
        let rows = try NPY.read(folder + "/rows.npy"), weights = try NPY.read(folder + "/weights.npy")
        let m = rows.shape[1]
        for r in 0..<rows.shape[0] {
            let row = (0..<m).map { rows.scalars[r * m + $0] == 1 }
            XCTAssertEqual(LIME.kernelWeight(row, width: 0.25), Double(weights.scalars[r]), accuracy: 1e-6, "row \(r)")
        }
        let manifest = try json(folder + "/manifest.json")
        let zero = try XCTUnwrap(manifest["all_zero_row"] as? [String: Any])
        XCTAssertEqual(LIME.kernelWeight([Bool](repeating: false, count: m), width: 0.25), try XCTUnwrap(zero["weight"] as? Double), accuracy: 1e-12)
    }

    /// Per coalition size, the weights KernelSHAP gives add up to that size's share of the Shapley
    /// kernel: exactly for the enumerated sizes, within sampling error for the sampled ones.
    func testKernelSHAPWeightsFollowTheShapleyKernel() throws {
        let model = try ExplainedModel(graph: try Models.load(fixturesDirectory + "/models/plain_cnn/model.onnx"), backend: CPUBackend())
        for (m, samples) in [(10, 200), (12, 3000), (16, 4000)] {
            let (rows, weights, enumerated) = KernelSHAP(model: model, samples: samples, seed: 5).coalitions(players: m)
            XCTAssertEqual(weights.reduce(0, +), 1, accuracy: 1e-9, "M \(m): the weights are a distribution")
            let kernel = (1..<m).map { s in Double(m - 1) / (Double(s) * Double(m - s)) }
            let total = kernel.reduce(0, +)
            var bySize = [Double](repeating: 0, count: m + 1), enumeratedSizes = Set<Int>()
            for (i, row) in rows.enumerated() {
                let s = row.filter { $0 }.count
                bySize[s] += weights[i]
                if i < enumerated { enumeratedSizes.insert(s) }
            }
            XCTAssertFalse(enumeratedSizes.isEmpty)
            for s in 1..<m {
                let mass = kernel[s - 1] / total
                if enumeratedSizes.contains(s) {
                    XCTAssertEqual(bySize[s], mass, accuracy: 1e-9, "M \(m) size \(s) (enumerated)")
                } else {
                    XCTAssertEqual(bySize[s], mass, accuracy: 0.25 * mass + 0.002, "M \(m) size \(s) (sampled)")
                }
            }
        }
    }

    /// On a game with interactions, KernelSHAP's error against the exact Shapley values keeps
    /// shrinking as its budget grows (a biased kernel would level off), and reaches them when every
    /// coalition is enumerated.
    func testKernelSHAPConvergesToExactShapleyOnANonAdditiveGame() throws {
        let m = 10
        var rng = SeededGenerator(seed: 31)
        let a = (0..<m).map { _ in Double(rng.nextGaussian()) }
        let pairs = (0..<12).map { _ in (Int(rng.next() % UInt64(m)), Int(rng.next() % UInt64(m)), Double(rng.nextGaussian())) }
        func v(_ s: Int) -> Double {
            var total = 0.0
            for i in 0..<m where s >> i & 1 == 1 { total += a[i] }
            for (i, j, b) in pairs where s >> i & 1 == 1 && s >> j & 1 == 1 { total += b }
            if s & 0b111 == 0b111 { total += 1.5 }  // a three-way interaction
            return total
        }
        // Exact Shapley values.
        var factorial = [1.0]
        for i in 1...m { factorial.append(factorial[i - 1] * Double(i)) }
        var exact = [Double](repeating: 0, count: m)
        for s in 0..<(1 << m) {
            let size = s.nonzeroBitCount
            guard size < m else { continue }
            let w = factorial[size] * factorial[m - size - 1] / factorial[m]
            for i in 0..<m where s >> i & 1 == 0 { exact[i] += w * (v(s | 1 << i) - v(s)) }
        }
        let model = try ExplainedModel(graph: try Models.load(fixturesDirectory + "/models/plain_cnn/model.onnx"), backend: CPUBackend())
        func error(samples: Int, controlVariate: Bool) -> Double {
            var total = 0.0
            for seed in 0..<8 {
                let (rows, weights, _) = KernelSHAP(model: model, samples: samples, seed: UInt64(seed)).coalitions(players: m)
                let y = rows.map { row in v(row.enumerated().reduce(0) { $1.element ? $0 | 1 << $1.offset : $0 }) }
                let phi = KernelSHAP.estimate(rows, y, weights, players: m, full: v((1 << m) - 1), empty: v(0), controlVariate: controlVariate).values
                XCTAssertEqual(phi.reduce(0, +), v((1 << m) - 1) - v(0), accuracy: 1e-9, "efficiency")
                total += zip(phi, exact).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
            }
            return total / 8
        }
        for controlVariate in [false, true] {
            let errors = [60, 120, 240, 480].map { error(samples: $0, controlVariate: controlVariate) }
            for (small, large) in zip(errors, errors.dropFirst()) { XCTAssertLessThan(large, small, "errors \(errors), control variate \(controlVariate)") }
            XCTAssertLessThan(errors.last!, 0.5 * errors.first!, "errors \(errors), control variate \(controlVariate)")
            XCTAssertLessThan(error(samples: (1 << m) - 2, controlVariate: controlVariate), 1e-9, "full enumeration gives the exact values")
        }
    }

    // MARK: A realistic-size model

    /// torchvision's SqueezeNet 1.1 at 224x224 (26 convolutions, ceil-mode max pooling, concats),
    /// against onnxruntime's logits and PyTorch's input gradient, in every run.
    func testSqueezeNetMatchesOnnxRuntimeAndPyTorch() throws {
        let folder = fixturesDirectory + "/models/squeezenet1_1"
        let graph = try Models.load(folder + "/model.onnx")
        let input = try NPY.read(folder + "/input.npy")
        let logits = try NPY.read(folder + "/logits.npy")
        let targets = try NPY.read(folder + "/target.npy").integers("target")
        let grad = try NPY.read(folder + "/grad_input.npy")
        for (label, backend) in TestBackends.all() where label != "cpu-im2col" && label != "opencl-tiled" {
            let model = try ExplainedModel(graph: graph, backend: backend)
            let r = try model.gradients(try backend.upload(input), targets: targets, wrt: [model.inputName])
            XCTAssertLessThan(relativeL2(doubles(r.logits), doubles(logits)), 1e-4, "logits on \(label)")
            // Through 26 ReLUs a few float32 roundings land on the other side of a kink: 2e-3, not the
            // 1e-3 of the small fixtures.
            XCTAssertLessThan(relativeL2(doubles(try backend.download(try model.inputGradient(r.grads))), doubles(grad)), 2e-3, "input gradient on \(label)")
        }
    }
}
