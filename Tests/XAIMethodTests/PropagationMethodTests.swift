import Foundation
import XCTest
import XAI
import XAITestSupport
@testable import XAIMethods

/// The modified-backward methods (guided backpropagation, deconvolution, guided Grad-CAM), the
/// projection CAMs (EigenCAM, EigenGradCAM) and GradientSHAP against Captum and pytorch-grad-cam
/// (Tools/make_propagation_fixtures.py) on every backend, and what each refuses.
final class PropagationMethodTests: XCTestCase {
    typealias Case = MethodReferenceTests.Case

    func check(_ got: Tensor, _ expected: Tensor, _ what: String, tolerance: Double = 1e-4, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.shape.count, expected.shape.count, "\(what): \(got.shape) vs \(expected.shape)", file: file, line: line)
        guard got.shape.count == expected.shape.count else { return }
        let error = relativeL2(doubles(got), doubles(expected))
        XCTAssertLessThan(error, tolerance, "\(what): relative L2 \(error)", file: file, line: line)
    }

    func testGuidedBackpropDeconvolutionAndGuidedGradCAMMatchCaptum() throws {
        for c in MethodReferenceTests.cases {
            for (label, backend) in TestBackends.all() {
                let model = try ExplainedModel(graph: c.graph, backend: backend)
                let target = Target.perImage(c.targets)
                let guided = try ModifiedBackprop(model: model, kind: .guided).attribute(c.input, target: target)
                check(guided.raw!, try c.reference("guidedbackprop"), "guidedbackprop \(c.name) on \(label)")
                XCTAssertEqual(guided.targets, c.targets)
                check(try ModifiedBackprop(model: model, kind: .deconvolution).attribute(c.input, target: target).raw!,
                      try c.reference("deconvolution"), "deconvolution \(c.name) on \(label)")
                let guidedCAM = try GuidedGradCAM(model: model, layer: c.layer).attribute(c.input, target: target)
                check(guidedCAM.raw!, try c.reference("guidedgradcam"), "guidedgradcam \(c.name) on \(label)")
                XCTAssertEqual(guidedCAM.map.shape, [c.input.shape[0], c.input.shape[2], c.input.shape[3]])
            }
        }
    }

    /// The rules change the rectifiers only: on a model whose every rectifier is active for the
    /// input's gradient signal they would agree with it; in general they differ from it, and
    /// guided backpropagation is deconvolution masked by where the unit was active.
    func testTheRulesDifferFromTheGradientAndFromEachOther() throws {
        let c = MethodReferenceTests.cases[0]
        let model = try ExplainedModel(graph: c.graph, backend: CPUBackend())
        let target = Target.perImage(c.targets)
        let gradient = try Saliency(model: model).attribute(c.input, target: target).raw!
        let guided = try ModifiedBackprop(model: model, kind: .guided).attribute(c.input, target: target).raw!
        let deconvolution = try ModifiedBackprop(model: model, kind: .deconvolution).attribute(c.input, target: target).raw!
        XCTAssertGreaterThan(relativeL2(doubles(guided), doubles(gradient)), 0.05)
        XCTAssertGreaterThan(relativeL2(doubles(guided), doubles(deconvolution)), 0.05)
    }

    func testAblationCAMMatchesPytorchGradCam() throws {
        for c in MethodReferenceTests.cases {
            for (label, backend) in TestBackends.all() {
                let model = try ExplainedModel(graph: c.graph, backend: backend)
                for batch in [3, 64] {
                    let a = try AblationCAM(model: model, layer: c.layer, internalBatchSize: batch).attribute(c.input, target: .perImage(c.targets))
                    check(a.raw!, try c.reference("ablationcam"), "ablationcam \(c.name) on \(label), batch \(batch)")
                }
            }
        }
    }

    /// FullGrad against pytorch-grad-cam's maps at the input size (its final min-max scaling applied
    /// to ours): the resizing is bilinear in both, cv2's and ours, whose grids agree to 2e-3 on
    /// the CAM fixtures (ReferenceCheckTests).
    func testFullGradMatchesPytorchGradCam() throws {
        let squeeze = try MethodReferenceTests.Case(name: "squeeze_block", layer: "",
                                                    input: NPY.read(fixturesDirectory + "/models/squeeze_block/input.npy"),
                                                    targets: NPY.read(fixturesDirectory + "/models/squeeze_block/target.npy").integers("fixture"),
                                                    graph: ONNXImporter.load(path: fixturesDirectory + "/models/squeeze_block/model.onnx").optimized())
        for c in MethodReferenceTests.cases + [squeeze] {
            let expected = try c.reference("fullgrad")
            for (label, backend) in TestBackends.all() {
                let model = try ExplainedModel(graph: c.graph, backend: backend)
                let a = try FullGrad(model: model).attribute(c.input, target: .perImage(c.targets))
                XCTAssertEqual(a.map.shape, expected.shape)
                let plane = a.map.shape.count / a.map.shape[0]
                for b in 0..<a.map.shape[0] {
                    let v = a.map.scalars[(b * plane)..<((b + 1) * plane)]
                    let low = v.min()!, high = v.max()! - low
                    let worst = zip(v, expected.scalars[(b * plane)..<((b + 1) * plane)]).map { abs(($0 - low) / (1e-7 + high) - $1) }.max()!
                    XCTAssertLessThan(worst, 5e-3, "fullgrad \(c.name) image \(b) on \(label)")
                }
            }
        }
    }

    /// The layers after a layer, run from it, give the model's logits; a layer that does not cut
    /// the graph (a residual block's inner activation, read again after the block's convolution)
    /// is refused with the node that reads past it.
    func testForwardFromALayer() throws {
        let c = MethodReferenceTests.cases[0]
        let backend = CPUBackend(), executor = Executor(graph: c.graph, backend: backend)
        let pass = try executor.forward(try backend.upload(c.input), keep: [c.layer])
        let output = c.graph.outputs[0].name
        let resumed = try executor.forward(from: c.layer, value: try pass.kept(c.layer))
        XCTAssertEqual(try backend.download(try XCTUnwrap(resumed[output])).scalars, try backend.download(try pass.output(output)).scalars)
        let inner = try XCTUnwrap(c.graph.nodes.first { $0.name.contains("layer2") && $0.name.contains("conv1") }?.outputs.first)
        let innerPass = try executor.forward(try backend.upload(c.input), keep: [inner])
        XCTAssertThrowsError(try executor.forward(from: inner, value: try innerPass.kept(inner))) { error in
            XCTAssertTrue("\(error)".contains("does not cut the graph"), "\(error)")
        }
        // Given what passes around it (the block's input, read by the shortcut), the same layer
        // runs: for the clean value, and for three copies of it against the skip at batch 1.
        let across = executor.nodesAfter(inner).across
        XCTAssertFalse(across.isEmpty)
        let image = try backend.upload(try c.input.sliced(starts: [0, 0, 0, 0], sizes: [1] + Array(c.input.shape.dims.dropFirst())))
        let clean = try executor.forward(image, keep: Set([inner] + across.map(\.value)))
        let skips = try Dictionary(uniqueKeysWithValues: across.map { ($0.value, Value.device(try clean.kept($0.value))) })
        let value = try clean.kept(inner)
        let copies = try backend.concat([value, value, value], axis: 0)
        let rows = try backend.download(try XCTUnwrap(try executor.forward(from: inner, value: copies, reading: skips)[output])).scalars
        let want = try backend.download(try clean.output(output)).scalars
        XCTAssertEqual(rows.count, 3 * want.count)
        for r in 0..<3 { XCTAssertEqual(Array(rows[(r * want.count)..<((r + 1) * want.count)]), want, "copy \(r)") }
        // Another value for the layer: run from it, or replaced in a whole forward, the same logits.
        let doubled = try backend.binary(.add, copies, copies)
        let resumed2 = try backend.download(try XCTUnwrap(try executor.forward(from: inner, value: doubled, reading: skips)[output]))
        let replaced = try backend.download(try executor.forward(try backend.concat([image, image, image], axis: 0), replacing: [inner: doubled]).output(output))
        XCTAssertLessThan(relativeL2(resumed2.scalars.map(Double.init), replaced.scalars.map(Double.init)), 1e-6)
        XCTAssertGreaterThan(relativeL2(replaced.scalars.map(Double.init), rows.map(Double.init)), 1e-3, "the replaced value is read")
    }

    func testEigenCAMsMatchPytorchGradCamsProjection() throws {
        for c in MethodReferenceTests.cases {
            for (label, backend) in TestBackends.all() {
                let model = try ExplainedModel(graph: c.graph, backend: backend)
                for gradients in [false, true] {
                    let method = EigenCAM(model: model, usesGradients: gradients, layer: c.layer, relu: false)
                    let a = try method.attribute(c.input, target: .perImage(c.targets))
                    check(a.raw!, try c.reference(method.name), "\(method.name) \(c.name) on \(label)")
                    let clipped = try EigenCAM(model: model, usesGradients: gradients, layer: c.layer).attribute(c.input, target: .perImage(c.targets))
                    XCTAssertEqual(clipped.raw!.scalars, a.raw!.scalars.map { max($0, 0) }, "\(method.name): relu clips the projection")
                }
            }
        }
    }

    /// pytorch-grad-cam 1.5.7's GradCAMElementWise, FEM, KPCA_CAM and FinerCAM (Tools/make_cam_variant_fixtures.py):
    /// their maps at the layer before its ReLU and resizing. Its KernelPCA runs in float32, ours in
    /// float64; mobile_block's 400 positions take scikit-learn's ARPACK path, small_resnet's 64 its dense one.
    /// Seen: every map within 1.3e-6 (relative L2) on both backends.
    func testGradCAMElementWiseFEMAndKPCACAMMatchPytorchGradCam() throws {
        for c in MethodReferenceTests.cases {
            for (label, backend) in TestBackends.all() {
                let model = try ExplainedModel(graph: c.graph, backend: backend)
                let target = Target.perImage(c.targets)
                let elementwise = try GradientCAM(model: model, variant: .gradCAMElementWise, layer: c.layer).attribute(c.input, target: target)
                check(elementwise.raw!, try c.reference("gradcamelementwise"), "gradcamelementwise \(c.name) on \(label)")
                for (sigmas, file) in [(2.0, "fem"), (1.0, "fem_k1")] {
                    let raw = try FEM(model: model, layer: c.layer, sigmas: sigmas, relu: false).attribute(c.input, target: target)
                    check(raw.raw!, try c.reference(file), "\(file) \(c.name) on \(label)")
                    let clipped = try FEM(model: model, layer: c.layer, sigmas: sigmas).attribute(c.input, target: target)
                    XCTAssertEqual(clipped.raw!.scalars, raw.raw!.scalars.map { max($0, 0) }, "fem: relu clips the map")
                }
                let kernels: [(KPCACAM.Kernel, Double?, String)] = [(.sigmoid, nil, "kpcacam"), (.rbf, 0.05, "kpcacam_rbf"), (.poly, nil, "kpcacam_poly"),
                                                                     (.cosine, nil, "kpcacam_cosine")]
                for (kernel, gamma, file) in kernels {
                    let raw = try KPCACAM(model: model, layer: c.layer, kernel: kernel, gamma: gamma, relu: false).attribute(c.input, target: target)
                    check(raw.raw!, try c.reference(file), "\(file) \(c.name) on \(label)")
                }
                for (alpha, file) in [(1.0, "finercam"), (0.5, "finercam_alpha05")] {
                    let finer = try FinerCAM(model: model, layer: c.layer, alpha: alpha).attribute(c.input, target: target)
                    check(finer.raw!, try c.reference(file), "\(file) \(c.name) on \(label)")
                }
                // The linear kernel's component is EigenCAM's principal projection.
                let linear = try KPCACAM(model: model, layer: c.layer, kernel: .linear, relu: false).attribute(c.input, target: target)
                let eigen = try EigenCAM(model: model, layer: c.layer, relu: false).attribute(c.input, target: target)
                check(linear.raw!, eigen.raw!, "kpcacam linear vs eigencam \(c.name) on \(label)", tolerance: 1e-5)
            }
        }
    }

    /// Finer-CAM's seed, the gradient of its comparison score over the logits, against central
    /// differences of the score in float64, on fresh logits; and the compared classes.
    func testFinerCAMScoreGradientMatchesFiniteDifferences() {
        var generator = SeededGenerator(seed: 77)
        for (classes, alpha) in [(10, 1.0), (7, 0.5), (3, 2.0)] {
            let y = (0..<classes).map { _ in Double.random(in: -3...3, using: &generator) }
            let c = classes / 2
            let compared = FinerCAM.compared(y, target: c, places: [1, 2, 3])
            XCTAssertEqual(compared.count, min(3, classes - 1))
            XCTAssertFalse(compared.contains(c))
            let distances = y.indices.filter { $0 != c }.map { abs(y[$0] - y[c]) }.sorted()
            XCTAssertEqual(compared.map { abs(y[$0] - y[c]) }, Array(distances.prefix(compared.count)))
            func score(_ v: [Double]) -> Double {
                let top = v.max()!
                let e = v.map { exp($0 - top) }, total = e.reduce(0, +)
                let p = e.map { $0 / total }
                return compared.reduce(0.0) { $0 + p[$1] * (v[c] - alpha * v[$1]) } / (compared.reduce(0.0) { $0 + p[$1] } + 1e-9)
            }
            let gradient = FinerCAM.scoreGradient(y, target: c, compared: compared, alpha: alpha)
            for k in 0..<classes {
                var up = y, down = y
                up[k] += 1e-5
                down[k] -= 1e-5
                XCTAssertEqual(gradient[k], (score(up) - score(down)) / 2e-5, accuracy: 1e-6, "class \(k) of \(classes), alpha \(alpha)")
            }
        }
    }

    /// pytorch-grad-cam 1.5.7's ShapleyCAM (Tools/make_cam_variant_fixtures.py), its map at the layer
    /// before the ReLU under each target kind: ReST, the softmax and the logit, whose map is Grad-CAM's;
    /// and at small_resnet's layer1, whose path to the logits runs through layer2's rectifiers.
    /// Seen: within 9.7e-7 (relative L2) on both backends.
    func testShapleyCAMMatchesPytorchGradCam() throws {
        for c in MethodReferenceTests.cases {
            for (label, backend) in TestBackends.all() {
                let model = try ExplainedModel(graph: c.graph, backend: backend)
                let target = Target.perImage(c.targets)
                for score in ShapleyCAM.Score.allCases {
                    let raw = try ShapleyCAM(model: model, layer: c.layer, score: score, relu: false).attribute(c.input, target: target)
                    check(raw.raw!, try c.reference("shapleycam_\(score.rawValue)"), "shapleycam \(score) \(c.name) on \(label)")
                }
                let logit = try ShapleyCAM(model: model, layer: c.layer, score: .logit).attribute(c.input, target: target)
                let gradCAM = try GradientCAM(model: model, layer: c.layer).attribute(c.input, target: target)
                XCTAssertEqual(logit.raw!.scalars, gradCAM.raw!.scalars, "the logit's ShapleyCAM is Grad-CAM on \(label)")
                guard c.name == "small_resnet" else { continue }
                for score in [ShapleyCAM.Score.rest, .probability] {
                    let raw = try ShapleyCAM(model: model, layer: "/layer1/relu2/Relu_output_0", score: score, relu: false).attribute(c.input, target: target)
                    check(raw.raw!, try c.reference("shapleycam_\(score.rawValue)_layer1"), "shapleycam \(score) at layer1 on \(label)")
                }
            }
        }
    }

    /// The Jacobian product against the backward it is the transpose of, `<J t, w> = <t, J^T w>` for
    /// fresh `t` and `w`, along small_resnet's layer2 (convolutions, a residual sum, rectifiers fused
    /// and not, global pooling, the classifier); and along the head alone, which is affine, against
    /// the outputs' change from a zero layer, `J A = f(A) - f(0)`.
    func testJacobianProductIsTheBackwardsTranspose() throws {
        let c = MethodReferenceTests.cases[0]
        var generator = SeededGenerator(seed: 79)
        for (label, backend) in TestBackends.all() {
            let model = try ExplainedModel(graph: c.graph, backend: backend)
            for layer in ["/layer1/relu2/Relu_output_0", c.layer] {
                let pass = try model.executor.forward(try backend.upload(c.input), keep: [layer], forBackward: true, backwardTo: [layer])
                let a = try pass.kept(layer)
                let t = Tensor(unchecked: a.shape, (0..<a.shape.count).map { _ in Float.random(in: -1...1, using: &generator) })
                let logits = try pass.output(model.outputName)
                let w = Tensor(unchecked: logits.shape, (0..<logits.shape.count).map { _ in Float.random(in: -1...1, using: &generator) })
                let jt = try backend.download(try model.executor.jacobianProduct(pass, layer: layer, direction: try backend.upload(t))[model.outputName]!)
                let jtw = try backend.download(try model.executor.backward(pass, seeds: [model.outputName: try backend.upload(w)], wrt: [layer])[layer]!)
                let left = zip(jt.scalars, w.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let right = zip(t.scalars, jtw.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                XCTAssertEqual(left, right, accuracy: 1e-5 * max(abs(left), 1), "<J t, w> at \(layer) on \(label)")
                guard layer == c.layer else { continue }
                let ja = try backend.download(try model.executor.jacobianProduct(pass, layer: layer, direction: a)[model.outputName]!)
                let zero = try backend.download(try model.executor.forward(from: layer, value: try backend.zeros(a.shape))[model.outputName]!)
                let change = zip(try backend.download(logits).scalars, zero.scalars).map { $0 - $1 }
                XCTAssertLessThan(relativeL2(ja.scalars.map(Double.init), change.map(Double.init)), 1e-5, "J A = f(A) - f(0) on \(label)")
            }
        }
    }

    /// Where the Hessian would not be exact, ShapleyCAM refuses with the node named: any score past a
    /// smooth op (mobile_block's hard-swish), ReST past max pooling (small_resnet's stem); the
    /// logit there is Grad-CAM. The Jacobian product names the node it cannot take.
    func testShapleyCAMRefusesPathsWhereItsHessianIsNotExact() throws {
        let (small, mobile) = (MethodReferenceTests.cases[0], MethodReferenceTests.cases[1])
        let backend = try Backends.make(.cpu)
        let smallModel = try ExplainedModel(graph: small.graph, backend: backend)
        let stem = "/relu/Relu_output_0"
        for score in [ShapleyCAM.Score.rest, .probability] {
            XCTAssertThrowsError(try ShapleyCAM(model: smallModel, layer: stem, score: score).attribute(small.input, target: .perImage(small.targets))) { error in
                XCTAssertTrue("\(error)".contains("selects by value") && "\(error)".contains("MaxPool"), "\(error)")
            }
        }
        let logit = try ShapleyCAM(model: smallModel, layer: stem, score: .logit).attribute(small.input, target: .perImage(small.targets))
        let gradCAM = try GradientCAM(model: smallModel, layer: stem).attribute(small.input, target: .perImage(small.targets))
        XCTAssertEqual(logit.raw!.scalars, gradCAM.raw!.scalars)
        let pass = try smallModel.executor.forward(try backend.upload(small.input), keep: [stem], forBackward: true, backwardTo: [stem])
        XCTAssertThrowsError(try smallModel.executor.jacobianProduct(pass, layer: stem, direction: try pass.kept(stem))) { error in
            XCTAssertTrue("\(error)".contains("max pooling"), "\(error)")
        }
        let mobileModel = try ExplainedModel(graph: mobile.graph, backend: backend)
        for score in ShapleyCAM.Score.allCases {
            XCTAssertThrowsError(try ShapleyCAM(model: mobileModel, layer: "/expand/expand.2/Clip_output_0", score: score).validate()) { error in
                XCTAssertTrue("\(error)".contains("not piecewise linear"), "\(error)")
            }
        }
        // The registry: the knob by its name, a bad value named, and the refusal at build time.
        let knobs = try MethodConfiguration.parse(json: Data(#"{"shapleyScore": "probability", "relu": false}"#.utf8))
        let built = try MethodRegistry.make("shapleycam", model: smallModel, configuration: knobs)
        XCTAssertEqual(try built.method.attribute(small.input, target: .perImage(small.targets), baseline: .zero).raw!.scalars,
                       try ShapleyCAM(model: smallModel, score: .probability, relu: false).attribute(small.input, target: .perImage(small.targets)).raw!.scalars)
        XCTAssertThrowsError(try MethodRegistry.make("shapleycam", model: smallModel,
                                                     configuration: try MethodConfiguration.parse(json: Data(#"{"shapleyScore": "loss"}"#.utf8)))) { error in
            XCTAssertTrue("\(error)".contains("shapleyScore"), "\(error)")
        }
        XCTAssertThrowsError(try MethodRegistry.make("shapleycam", model: smallModel,
                                                     configuration: try MethodConfiguration.parse(json: Data("{\"layer\": \"\(stem)\"}".utf8)))) { error in
            XCTAssertTrue("\(error)".contains("selects by value"), "\(error)")
        }
    }

    /// ShapleyCAM's seed against float64 differences on fresh logits: with no change of the logits it
    /// is the score's gradient (central differences of the score, written out here), and along a
    /// change `u` it subtracts half the gradient's central difference along `u`, the Hessian times `u`.
    func testShapleyCAMSeedMatchesFiniteDifferences() {
        var generator = SeededGenerator(seed: 78)
        for classes in [10, 4, 2] {
            let y = (0..<classes).map { _ in Double.random(in: -3...3, using: &generator) }
            let u = (0..<classes).map { _ in Double.random(in: -2...2, using: &generator) }
            let zero = [Double](repeating: 0, count: classes)
            let c = classes - 1
            for score in ShapleyCAM.Score.allCases {
                func value(_ v: [Double]) -> Double {
                    let top = v.max()!
                    let lse = top + log(v.reduce(0.0) { $0 + exp($1 - top) })
                    switch score {
                    case .rest: return v[c] + (v[c] - lse)
                    case .probability: return exp(v[c] - lse)
                    case .logit: return v[c]
                    }
                }
                let gradient = ShapleyCAM.seed(logits: y, moved: zero, target: c, score: score)
                for k in 0..<classes {
                    var up = y, down = y
                    up[k] += 1e-5
                    down[k] -= 1e-5
                    XCTAssertEqual(gradient[k], (value(up) - value(down)) / 2e-5, accuracy: 1e-7, "\(score): gradient, class \(k) of \(classes)")
                }
                let h = 1e-4
                let ahead = ShapleyCAM.seed(logits: zip(y, u).map { $0 + h * $1 }, moved: zero, target: c, score: score)
                let behind = ShapleyCAM.seed(logits: zip(y, u).map { $0 - h * $1 }, moved: zero, target: c, score: score)
                let seed = ShapleyCAM.seed(logits: y, moved: u, target: c, score: score)
                for k in 0..<classes {
                    let curvature = (ahead[k] - behind[k]) / (2 * h)
                    XCTAssertEqual(seed[k], gradient[k] - 0.5 * curvature, accuracy: 1e-7, "\(score): seed, class \(k) of \(classes)")
                }
            }
        }
    }

    /// The registry builds FEM, KPCA-CAM and Finer-CAM with the knobs the command line, C and Python
    /// name (`femSigmas`, `kpcaKernel`, `kpcaGamma`, `finerAlpha`), and names a bad one.
    func testFEMKPCAAndFinerCAMKnobsReachTheMethods() throws {
        let c = MethodReferenceTests.cases[0]
        let model = try ExplainedModel(graph: c.graph, backend: try Backends.make(.cpu))
        let target = Target.perImage(c.targets)
        func registry(_ name: String, _ json: String) throws -> Tensor {
            let knobs = try MethodConfiguration.parse(json: Data(json.utf8))
            guard let raw = try MethodRegistry.make(name, model: model, configuration: knobs).method.attribute(c.input, target: target, baseline: .zero).raw else {
                throw XAIError.unsupported(op: name, reason: "no raw map")
            }
            return raw
        }
        let layer = "\"layer\": \"\(c.layer)\", \"relu\": false"
        XCTAssertEqual(try registry("fem", "{\(layer), \"femSigmas\": 1}").scalars,
                       try FEM(model: model, layer: c.layer, sigmas: 1, relu: false).attribute(c.input, target: target).raw!.scalars)
        XCTAssertEqual(try registry("kpcacam", "{\(layer), \"kpcaKernel\": \"rbf\", \"kpcaGamma\": 0.05}").scalars,
                       try KPCACAM(model: model, layer: c.layer, kernel: .rbf, gamma: 0.05, relu: false).attribute(c.input, target: target).raw!.scalars)
        XCTAssertNotEqual(try registry("fem", "{\(layer), \"femSigmas\": 1}").scalars, try registry("fem", "{\(layer)}").scalars)
        XCTAssertEqual(try registry("finercam", "{\(layer), \"finerAlpha\": 0.5}").scalars,
                       try FinerCAM(model: model, layer: c.layer, alpha: 0.5, relu: false).attribute(c.input, target: target).raw!.scalars)
        // Finer-CAM's places must name other classes; KPCA-CAM refuses a layer whose kernel matrix would not fit.
        for places in [[0, 1], [1, 1], [-1], []] {
            XCTAssertThrowsError(try FinerCAM(model: model, comparisons: places).validate(), "\(places)") { error in
                XCTAssertTrue("\(error)".contains("comparisons"), "\(error)")
            }
        }
        let wide = KPCACAM.positionLimit + 1
        XCTAssertThrowsError(try KPCACAM(model: model).kernelProjection([Float](repeating: 1, count: wide), channels: 1, positions: wide)) { error in
            XCTAssertTrue("\(error)".contains("layer") && "\(error)".contains("\(wide) positions"), "\(error)")
        }
        for (json, knob) in [(#"{"kpcaKernel": "laplacian"}"#, "kpcaKernel"), (#"{"kpcaGamma": -1}"#, "kpcaGamma"), (#"{"femSigmas": "two"}"#, "femSigmas")] {
            XCTAssertThrowsError(try registry(json.contains("fem") ? "fem" : "kpcacam", json), json) { error in
                XCTAssertTrue("\(error)".contains(knob), "\(error)")
            }
        }
    }

    /// The projection against an independent computation: power iteration on `X^T X` in float64,
    /// for a matrix with fewer positions than channels (the `X X^T` branch) and one with more.
    func testFirstPrincipalProjectionAgreesWithPowerIteration() throws {
        for (channels, positions) in [(20, 9), (7, 30)] {
            let values = Tensor.uniform([channels, positions], in: -1...1, seed: UInt64(channels)).scalars
            let got = try firstPrincipalProjection(values, channels: channels, positions: positions)
            var x = [[Double]](repeating: [Double](repeating: 0, count: channels), count: positions)
            for ch in 0..<channels {
                let mean = (0..<positions).reduce(0.0) { $0 + Double(values[ch * positions + $1]) } / Double(positions)
                for p in 0..<positions { x[p][ch] = Double(values[ch * positions + p]) - mean }
            }
            var v = [Double](repeating: 1, count: channels)
            for _ in 0..<5000 {
                let xv = x.map { row in zip(row, v).reduce(0) { $0 + $1.0 * $1.1 } }
                var next = [Double](repeating: 0, count: channels)
                for p in 0..<positions { for ch in 0..<channels { next[ch] += x[p][ch] * xv[p] } }
                let norm = next.reduce(0) { $0 + $1 * $1 }.squareRoot()
                v = next.map { $0 / norm }
            }
            var expected = x.map { row in zip(row, v).reduce(0) { $0 + $1.0 * $1.1 } }
            if abs(expected.min()!) > abs(expected.max()!) { expected = expected.map { -$0 } }
            XCTAssertLessThan(relativeL2(got, expected), 1e-9, "\(channels) channels x \(positions) positions")
        }
    }

    func testGradientSHAPMatchesCaptumFedTheSameDraws() throws {
        for c in MethodReferenceTests.cases {
            let index = try c.reference("gradientshap_index").integers("fixture")
            let draws = GradientSHAP.Draws(index: index, alpha: try c.reference("gradientshap_alpha").scalars,
                                           noise: try c.reference("gradientshap_noise"))
            let baselines = try c.reference("gradientshap_baselines")
            for (label, backend) in TestBackends.all() {
                let model = try ExplainedModel(graph: c.graph, backend: backend)
                for batch in [3, 8] {
                    let a = try GradientSHAP(model: model, samples: 8, stdev: 0.1, internalBatchSize: batch, draws: draws)
                        .attribute(c.input, target: .perImage(c.targets), baseline: .tensor(baselines))
                    // mobile_block (ReLU6, Hardswish): 5.6e-4 on three backends, under 1e-4 on one, as
                    // the other methods on it differ from Captum by up to 1e-3 (MethodReferenceTests).
                    check(a.raw!, try c.reference("gradientshap"), "gradientshap \(c.name) on \(label), batch \(batch)",
                          tolerance: c.name == "mobile_block" ? 1e-3 : 1e-4)
                }
            }
        }
    }

    /// Its own draws: the same bits whatever the internal batch, and the efficiency it approximates
    /// (the attributions sum to E[f(x~)] - E[f(b)]) holds on a model linear in its input.
    func testGradientSHAPIsBatchInvariantAndEfficientOnALinearModel() throws {
        let c = MethodReferenceTests.cases[0]
        let baselines = Tensor.uniform(Shape([3] + c.input.shape.dims.dropFirst()), in: -0.5...0.5, seed: 31)
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: c.graph, backend: backend)
            func run(_ batch: Int) throws -> Tensor {
                try GradientSHAP(model: model, samples: 7, stdev: 0.05, internalBatchSize: batch, seed: 5)
                    .attribute(c.input, target: .perImage(c.targets), baseline: .tensor(baselines)).raw!
            }
            XCTAssertEqual(try run(2).scalars, try run(7).scalars, label)
        }

        // A linear model (one Gemm over the flattened image): gradient x (x~ - b) sums to f(x~) - f(b)
        // exactly for every draw, so the mean sums to the mean difference over the same draws.
        let (h, w) = (6, 5), classes = 4
        let weight = Tensor.uniform([classes, 3 * h * w], in: -1...1, seed: 40)
        let graph = Graph(name: "linear", inputs: [ValueInfo(name: "input", shape: [nil, 3, h, w])],
                          outputs: [ValueInfo(name: "logits", shape: [nil, classes])], initializers: ["W": weight], nodes: [
            Node(name: "flatten", op: .flatten(axis: 1), inputs: ["input"], outputs: ["flat"]),
            Node(name: "fc", op: .gemm(transA: false, transB: true, alpha: 1, beta: 1, activation: .identity), inputs: ["flat", "W"], outputs: ["logits"]),
        ])
        let x = Tensor.uniform([1, 3, h, w], in: -1...1, seed: 41)
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let linear = try ExplainedModel(graph: graph, backend: backend)
            let shap = GradientSHAP(model: linear, samples: 5, stdev: 0.2, seed: 9)
            let a = try shap.attribute(x, target: .index(2), baseline: .zero)
            var expected = 0.0
            for s in 0..<5 {
                let (_, _, noise) = try shap.draw(s, references: 1, per: x.shape.count)
                let features = 3 * h * w
                var logit = 0.0
                for i in 0..<features { logit += Double(weight.scalars[2 * features + i]) * Double(x.scalars[i] + noise[i]) }
                expected += logit / 5
            }
            XCTAssertEqual(a.raw!.scalars.reduce(0.0) { $0 + Double($1) }, expected, accuracy: 1e-4 * max(1, abs(expected)), label)
        }
    }

    /// DeepLIFT and DeepLiftShap against Captum on plain_cnn (its pool's windows do not overlap)
    /// and small_resnet (overlapping: Captum run with a summing max_unpool2d, see the fixture
    /// script), on every backend; Captum's convergence delta matched by ours.
    func testDeepLIFTMatchesCaptum() throws {
        let models = fixturesDirectory + "/models"
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixturesDirectory + "/methods/propagation.json"))) as! [String: Any]
        for name in ["plain_cnn", "small_resnet"] {
            let graph = try ONNXImporter.load(path: "\(models)/\(name)/model.onnx").optimized()
            let input = try NPY.read("\(models)/\(name)/input.npy")
            let targets = try NPY.read("\(models)/\(name)/target.npy").integers("fixture")
            func reference(_ file: String) throws -> Tensor { try NPY.read(fixturesDirectory + "/methods/\(name)/\(file).npy") }
            let captumDelta = ((manifest["models"] as! [String: Any])[name] as! [String: Any])["deeplift_delta"] as! [Double]
            for (label, backend) in TestBackends.all() {
                let model = try ExplainedModel(graph: graph, backend: backend)
                let a = try DeepLIFT(model: model).attribute(input, target: .perImage(targets), baseline: .tensor(try reference("deeplift_baseline")))
                check(a.raw!, try reference("deeplift"), "deeplift \(name) on \(label)")
                for (ours, theirs) in zip(a.diagnostics["completenessDelta"]!, captumDelta) {
                    XCTAssertEqual(ours, theirs, accuracy: 1e-4, "deeplift \(name) on \(label): convergence delta")
                }
                let shap = try DeepLIFT(model: model, overBaselines: true)
                    .attribute(input, target: .perImage(targets), baseline: .tensor(try reference("deepliftshap_baselines")))
                check(shap.raw!, try reference("deepliftshap"), "deepliftshap \(name) on \(label)")
            }
        }
    }

    /// Summation to delta: DeepLIFT's attributions sum to f(x) - f(x') (its rescale and max-pool
    /// rules both conserve), on a ResNet-18 with seeded weights and on every backend, where
    /// gradient x (x - x') does not.
    func testDeepLIFTSumsToTheOutputDifference() throws {
        let graph = try Zoo.model("resnet18", size: 32, seed: 12).optimized()
        let x = Tensor.uniform([2, 3, 32, 32], in: -1...1, seed: 13)
        for (label, backend) in TestBackends.all() {
            let model = try ExplainedModel(graph: graph, backend: backend)
            let a = try DeepLIFT(model: model).attribute(x, target: .perImage([3, 7]), baseline: .uniformNoise(low: -1, high: 1, seed: 14))
            for (delta, difference) in zip(a.diagnostics["completenessDelta"]!, a.diagnostics["outputDifference"]!) {
                XCTAssertLessThan(abs(delta), 1e-4 * max(abs(difference), 1), "\(label): delta \(delta) for a difference of \(difference)")
            }
            if label == "cpu" {
                let g = try InputXGradient(model: model).attribute(x, target: .perImage([3, 7])).raw!
                let baseline = Tensor.uniform([1, 3, 32, 32], in: -1...1, seed: 14)
                let per = 3 * 32 * 32
                let linearised = (0..<per).reduce(0.0) { $0 + Double(g.scalars[$1] / x.scalars[$1] * (x.scalars[$1] - baseline.scalars[$1])) }
                XCTAssertGreaterThan(abs(linearised - a.diagnostics["outputDifference"]![0]), 0.01, "the gradient's first-order sum misses the difference")
            }
        }
    }

    /// LRP with Zennit's three composites, and w-square on convolutions, against Zennit on a plain
    /// CNN, a SqueezeNet block (fire modules' concatenation, ceil-mode max pools, a standalone
    /// batch norm, global average pooling) and a small ResNet (batch norms merged, residual sums
    /// canonized as Zennit's ResNet canonizer does), on every backend; relevance sums as Zennit's.
    func testLRPMatchesZennit() throws {
        let models = fixturesDirectory + "/models"
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixturesDirectory + "/methods/propagation.json"))) as! [String: Any]
        for name in ["plain_cnn", "squeeze_block", "small_resnet"] {
            let graph = try ONNXImporter.load(path: "\(models)/\(name)/model.onnx").optimized()
            let input = try NPY.read("\(models)/\(name)/input.npy")
            let targets = try NPY.read("\(models)/\(name)/target.npy").integers("fixture")
            let entry = (manifest["models"] as! [String: Any])[name] as! [String: Any]
            let low = (entry["lrp_low"] as! [Double]).map(Float.init), high = (entry["lrp_high"] as! [Double]).map(Float.init)
            let sums = entry["lrp_relevance_sums"] as! [String: [Double]]
            for (label, backend) in TestBackends.all() {
                let model = try ExplainedModel(graph: graph, backend: backend)
                for composite in LRPComposite.allCases where composite != .epsilon {  // (epsilon: Captum's, below)
                    let a = try LRP(model: model, composite: composite, low: low, high: high).attribute(input, target: .perImage(targets))
                    check(a.raw!, try NPY.read(fixturesDirectory + "/methods/\(name)/lrp_\(composite.rawValue).npy"), "lrp \(composite) \(name) on \(label)")
                    for (ours, theirs) in zip(a.diagnostics["relevanceSum"]!, sums[composite.rawValue]!) {
                        XCTAssertEqual(ours, theirs, accuracy: 1e-4 * max(1, abs(theirs)), "lrp \(composite) \(name) on \(label): relevance sum")
                    }
                }
                // w-square on every convolution (no first-layer rule), epsilon on dense layers.
                let wSquare = LRPComposite.epsilonAlpha2Beta1.rules(for: graph).mapValues { rule -> LRPRule in
                    if case .alphaBeta = rule { return .wSquare }
                    return rule
                }
                // On small_resnet, w-square is ill-conditioned: it sends relevance to a unit whatever
                // its activation, and one residual sum (layer1, image 0) is 1.4e-3 where its
                // summands are 1.2, so the norm rule multiplies their shares by about 900. Zennit's
                // own float32 result is 1.9e-4 from its float64 one, and ours 6.3e-3; the composites,
                // whose rules weigh relevance by activations, agree to 1e-4 on the same model.
                let a = try LRP(model: model, rules: wSquare).attribute(input, target: .perImage(targets))
                check(a.raw!, try NPY.read(fixturesDirectory + "/methods/\(name)/lrp_wsquare.npy"), "lrp w-square \(name) on \(label)",
                      tolerance: name == "small_resnet" ? 1e-2 : 1e-4)
            }
        }
    }

    /// LRP-epsilon (every layer epsilon 1e-9) against Captum's LRP with its default rules, on the
    /// fixture model without batch norm (Captum gives a batch norm a rule of its own; xai folds it).
    func testLRPEpsilonMatchesCaptum() throws {
        let folder = fixturesDirectory + "/models/plain_cnn"
        let graph = try ONNXImporter.load(path: folder + "/model.onnx").optimized()
        let input = try NPY.read(folder + "/input.npy")
        let targets = try NPY.read(folder + "/target.npy").integers("fixture")
        let expected = try NPY.read(fixturesDirectory + "/methods/plain_cnn/lrp_captum.npy")
        for (label, backend) in TestBackends.all() {
            let model = try ExplainedModel(graph: graph, backend: backend)
            let a = try LRP(model: model, composite: .epsilon, epsilon: 1e-9).attribute(input, target: .perImage(targets))
            check(a.raw!, expected, "lrp epsilon plain_cnn on \(label) against Captum")
        }
    }

    /// Conservation: with LRP-0 (epsilon 0) everywhere on a bias-free ReLU network with no pooling
    /// of maxima, the relevance at the input sums to the logit, on every backend.
    func testLRPConservesOnABiasFreeNetwork() throws {
        let (h, w) = (12, 10)
        let nodes = [
            Node(name: "conv1", op: .conv(Conv2DParams(padding: 1), activation: .relu, autoPad: .explicit),
                 inputs: ["input", "w1"], outputs: ["a1"]),
            Node(name: "conv2", op: .conv(Conv2DParams(stride: 2, padding: 1), activation: .relu, autoPad: .explicit),
                 inputs: ["a1", "w2"], outputs: ["a2"]),
            Node(name: "pool", op: .globalAveragePool, inputs: ["a2"], outputs: ["p"]),
            Node(name: "flat", op: .flatten(axis: 1), inputs: ["p"], outputs: ["f"]),
            Node(name: "fc", op: .gemm(transA: false, transB: true, alpha: 1, beta: 1, activation: .identity), inputs: ["f", "wf"], outputs: ["logits"]),
        ]
        let graph = Graph(name: "bias-free", inputs: [ValueInfo(name: "input", shape: [nil, 3, h, w])], outputs: [ValueInfo(name: "logits", shape: [nil, 5])],
                          initializers: ["w1": .uniform([6, 3, 3, 3], in: -0.5...0.5, seed: 50), "w2": .uniform([8, 6, 3, 3], in: -0.5...0.5, seed: 51),
                                         "wf": .uniform([5, 8], in: -1...1, seed: 52)], nodes: nodes)
        let x = Tensor.uniform([2, 3, h, w], in: -1...1, seed: 53)
        for (label, backend) in TestBackends.all() {
            let model = try ExplainedModel(graph: graph, backend: backend)
            let zero = LRPComposite.epsilonAlpha2Beta1.rules(for: graph).mapValues { rule -> LRPRule in
                switch rule {
                case .alphaBeta, .epsilon: return .epsilon(0)
                default: return rule
                }
            }
            let a = try LRP(model: model, rules: zero).attribute(x, target: .perImage([1, 4]))
            for (sum, logit) in zip(a.diagnostics["relevanceSum"]!, a.scores) {
                XCTAssertEqual(sum, Double(logit), accuracy: 1e-4 * max(1, abs(Double(logit))), "\(label): relevance sums to the logit")
            }
            // z+ (alpha 1 beta 0) conserves too where every output has a positive contribution.
            let plus = try LRP(model: model, composite: .epsilonPlusFlat, epsilon: 0).attribute(x, target: .perImage([1, 4]))
            XCTAssertEqual(plus.raw!.shape, x.shape)
        }
    }

    func testUnfusingActivationsKeepsTheOutputs() throws {
        let c = MethodReferenceTests.cases[0]
        let unfused = c.graph.unfusingActivations()
        XCTAssertGreaterThan(unfused.nodes.count, c.graph.nodes.count)
        for (label, backend) in TestBackends.all() {
            let x = try backend.upload(c.input)
            let fused = try backend.download(try Executor(graph: c.graph, backend: backend).forward(x).output(c.graph.outputs[0].name))
            let plain = try backend.download(try Executor(graph: unfused, backend: backend).forward(x).output(c.graph.outputs[0].name))
            XCTAssertLessThan(relativeL2(doubles(plain), doubles(fused)), 1e-6, label)
        }
    }

    func testWhatTheMethodsRefuse() throws {
        // op_zoo has LeakyReLU and Tanh, no Relu: the guided rules would change nothing.
        let graph = try ONNXImporter.load(path: fixturesDirectory + "/models/op_zoo/model.onnx").optimized()
        let model = try ExplainedModel(graph: graph, backend: CPUBackend())
        for kind in ModifiedBackprop.Kind.allCases {
            XCTAssertThrowsError(try ModifiedBackprop(model: model, kind: kind).validate()) { error in
                XCTAssertTrue("\(error)".contains("no Relu"), "\(error)")
            }
            XCTAssertFalse(try MethodRegistry.spec(kind.rawValue).applies(to: model))
        }
        // mobile_block's squeeze-excitation multiplies two activations: DeepLIFT has no rule for it.
        let mobile = try ExplainedModel(graph: MethodReferenceTests.cases[1].graph, backend: CPUBackend())
        XCTAssertThrowsError(try DeepLIFT(model: mobile).validate()) { error in
            XCTAssertTrue("\(error)".contains("node '") && "\(error)".contains("Mul"), "\(error)")
        }
        XCTAssertFalse(try MethodRegistry.spec("deeplift").applies(to: mobile))
        let c = MethodReferenceTests.cases[0]
        let resnet = try ExplainedModel(graph: c.graph, backend: CPUBackend())
        let plain = try ExplainedModel(graph: try ONNXImporter.load(path: fixturesDirectory + "/models/plain_cnn/model.onnx").optimized(), backend: CPUBackend())
        XCTAssertThrowsError(try LRP(model: plain, composite: .epsilonGammaBox, low: [0], high: [1]).validate()) { error in
            XCTAssertTrue("\(error)".contains("3 input channels"), "\(error)")
        }
        XCTAssertThrowsError(try LRP(model: plain, epsilon: -1).validate()) { error in
            XCTAssertTrue("\(error)".contains("epsilon"), "\(error)")
        }
        XCTAssertThrowsError(try DeepLIFT(model: resnet).attribute(c.input, target: .predicted, baseline: .tensor(Tensor.uniform(Shape([3] + c.input.shape.dims.dropFirst()), seed: 2)))) { error in
            XCTAssertTrue("\(error)".contains("deepliftshap"), "\(error)")
        }
        XCTAssertThrowsError(try EigenCAM(model: resnet, layer: "no_such_layer").attribute(c.input, target: .predicted)) { error in
            XCTAssertTrue("\(error)".contains("no_such_layer"), "\(error)")
        }
        XCTAssertThrowsError(try GradientSHAP(model: resnet, samples: 0).attribute(c.input, target: .predicted)) { error in
            XCTAssertTrue("\(error)".contains("samples"), "\(error)")
        }
        XCTAssertThrowsError(try GradientSHAP(model: resnet, stdev: -1).attribute(c.input, target: .predicted)) { error in
            XCTAssertTrue("\(error)".contains("stdevs"), "\(error)")
        }
    }
}
