import Foundation
import XCTest
import XAI
import XAITestSupport

/// Today's architectures (Tools/make_architecture_fixtures.py): small instances of torchvision's
/// ViT, ConvNeXt, ShuffleNetV2 and Swin, each exported with the default (dynamo, opset 20) and the
/// TorchScript (opset 17) exporter. Our logits against onnxruntime's and our input gradients against
/// PyTorch's autograd, on every backend, as exported and rewritten.
final class ArchitectureFixtureTests: XCTestCase {
    static let directory = fixturesDirectory + "/architectures"

    static let names: [String] = {
        guard let data = FileManager.default.contents(atPath: directory + "/manifest.json"),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let models = json["models"] as? [String: Any] else { return [] }
        return models.keys.sorted()
    }()

    func testEveryArchitectureAndExporterIsPresent() {
        XCTAssertEqual(Self.names, ["convnext_dynamo", "convnext_torchscript", "convnext_torchscript16", "shufflenet_dynamo", "shufflenet_torchscript",
                                    "swin_dynamo", "swin_torchscript", "swin_torchscript16", "vit_dynamo", "vit_torchscript", "vit_torchscript16"])
    }

    /// Logits against onnxruntime's and input gradients against PyTorch's, within 1e-4, on every
    /// backend: the graph optimised as xai runs it and, unless `asExported` is false (a graph that
    /// only runs once its exporter's NaN guards are rewritten away), as exported.
    static func check(_ name: String, in directory: String = ArchitectureFixtureTests.directory, asExported: Bool = true,
               file: StaticString = #filePath, line: UInt = #line) throws {
        let folder = directory + "/" + name
        let raw = try ONNXImporter.load(path: folder + "/model.onnx")
        let input = try NPY.read(folder + "/input.npy")
        let logits = try NPY.read(folder + "/logits.npy")
        let target = try NPY.read(folder + "/target.npy").integers("fixture")
        let expected = try NPY.read(folder + "/grad_input.npy")
        for (variant, graph) in [("optimized", try raw.optimized())] + (asExported ? [("as exported", raw)] : []) {
            for (label, backend) in TestBackends.all() {
                let context = "\(name) (\(variant)) on \(label)"
                let executor = Executor(graph: graph, backend: backend)
                let pass = try executor.forward(try backend.upload(input), forBackward: true)
                let output = graph.outputs[0].name
                let y = try backend.download(try pass.output(output))
                XCTAssertEqual(y.shape, logits.shape, context, file: file, line: line)
                XCTAssertLessThan(relativeL2(doubles(y), doubles(logits)), 1e-4, "logits of \(context)", file: file, line: line)
                var seed = Tensor(shape: y.shape)
                for (b, t) in target.enumerated() { seed[b, t] = 1 }
                let inputName = graph.imageInput!.name
                let grads = try executor.backward(pass, seeds: [output: try backend.upload(seed)], wrt: [inputName])
                let got = try backend.download(grads[inputName]!)
                XCTAssertEqual(got.shape, expected.shape, "gradient of \(context)", file: file, line: line)
                let error = relativeL2(doubles(got), doubles(expected))
                XCTAssertLessThan(error, 1e-4, "input gradient of \(context)", file: file, line: line)
            }
        }
    }

    func testViTDynamo() throws { try Self.check("vit_dynamo") }
    func testViTTorchScript() throws { try Self.check("vit_torchscript") }
    func testConvNeXtDynamo() throws { try Self.check("convnext_dynamo") }
    func testConvNeXtTorchScript() throws { try Self.check("convnext_torchscript") }
    func testShuffleNetDynamo() throws { try Self.check("shufflenet_dynamo") }
    func testShuffleNetTorchScript() throws { try Self.check("shufflenet_torchscript") }
    func testSwinDynamo() throws { try Self.check("swin_dynamo") }
    func testSwinTorchScript() throws { try Self.check("swin_torchscript") }
    // Opset 16: LayerNorm spelled out in arithmetic, fused back by the rewrite (checked below).
    func testViTTorchScriptOpset16() throws { try Self.check("vit_torchscript16") }
    func testConvNeXtTorchScriptOpset16() throws { try Self.check("convnext_torchscript16") }
    func testSwinTorchScriptOpset16() throws { try Self.check("swin_torchscript16") }

    /// TorchScript's ViT takes q, k and v from the packed projection by three Gathers; they become one
    /// Split per block (the fixture tests check the rewritten graph's logits and gradients).
    func testGathersOfEveryIndexBecomeOneSplit() throws {
        let optimized = try ONNXImporter.load(path: Self.directory + "/vit_torchscript/model.onnx").optimized()
        let splits = optimized.nodes.filter { if case .split = $0.op { return true }; return false }.count
        XCTAssertEqual(splits, 2, "one per block")
    }

    /// Output `z` of a graph with input `x`, and the gradient of `sum(seed * z)` with respect to `x`.
    static func outputAndGradient(_ graph: Graph, _ x: Tensor, _ seed: Tensor, _ backend: any Backend) throws -> (Tensor, Tensor) {
        let executor = Executor(graph: graph, backend: backend)
        let pass = try executor.forward(try backend.upload(x), forBackward: true)
        let dx = try executor.backward(pass, seeds: ["z": try backend.upload(seed)], wrt: ["x"])["x"]
        return (try backend.download(try pass.output("z")), try backend.download(try XCTUnwrap(dx)))
    }

    /// `torch.roll` as exported, `Concat(x[p:], x[:p])`, becomes one Roll in every Swin export (two
    /// per shifted block and direction); pieces that leave a gap, or a piece read elsewhere too,
    /// stay slices. Rolled and sliced graphs agree forward and backward on every backend.
    func testRollsSpelledAsSlicesAreFused() throws {
        func rolls(_ g: Graph) -> Int { g.nodes.filter { if case .roll = $0.op { return true }; return false }.count }
        for name in ["swin_dynamo", "swin_torchscript", "swin_torchscript16"] {
            XCTAssertGreaterThanOrEqual(rolls(try ONNXImporter.load(path: Self.directory + "/\(name)/model.onnx").optimized()), 4, name)
        }
        func slice(_ name: String, _ from: String, _ start: String, _ end: String, _ axis: String) -> Node {
            Node(name: name, op: .slice, inputs: [from, start, end, axis], outputs: [name])
        }
        let constants: [String: Tensor] = ["0": Tensor(unchecked: [1], [0]), "2": Tensor(unchecked: [1], [2]), "3": Tensor(unchecked: [1], [3]),
                                           "end": Tensor(unchecked: [1], [Float(Int32.max)]), "axis2": Tensor(unchecked: [1], [2])]
        let graph = Graph(name: "rolls", inputs: [ValueInfo(name: "x", shape: [nil, 2, 7, 3])], outputs: [ValueInfo(name: "z", shape: [nil, 2, 7, 3])],
                          initializers: constants,
                          nodes: [slice("tail", "x", "3", "end", "axis2"), slice("head", "x", "0", "3", "axis2"),
                                  Node(name: "roll", op: .concat(axis: 2), inputs: ["tail", "head"], outputs: ["r"]),
                                  // A gap: x[3:] then x[:2] is no roll.
                                  slice("tail2", "r", "3", "end", "axis2"), slice("head2", "r", "0", "2", "axis2"),
                                  Node(name: "gap", op: .concat(axis: 2), inputs: ["tail2", "head2"], outputs: ["g"]),
                                  Node(name: "wide", op: .binary(.add), inputs: ["g", "g"], outputs: ["w"]),
                                  // A roll by 2 whose tail is also read by the Add below.
                                  slice("tail3", "r", "2", "end", "axis2"), slice("head3", "r", "0", "2", "axis2"),
                                  Node(name: "shared", op: .concat(axis: 2), inputs: ["tail3", "head3"], outputs: ["q"]),
                                  Node(name: "t", op: .reduce(.sum, axes: [2], keepDims: true), inputs: ["tail3"], outputs: ["ts"]),
                                  Node(name: "u", op: .binary(.add), inputs: ["q", "ts"], outputs: ["z0"]),
                                  Node(name: "v", op: .reduce(.sum, axes: [2], keepDims: true), inputs: ["w"], outputs: ["ws"]),
                                  Node(name: "z", op: .binary(.add), inputs: ["z0", "ws"], outputs: ["z"])])
        let fused = graph.fusingRolls()
        XCTAssertEqual(rolls(fused), 1)
        XCTAssertEqual(fused.nodes.filter { if case .slice = $0.op { return true }; return false }.count, 4)
        let x = Tensor.uniform([2, 2, 7, 3], in: -1...1, seed: 87), seed = Tensor.uniform([2, 2, 7, 3], in: -1...1, seed: 88)
        for (label, backend) in TestBackends.all() {
            let (y, dx) = try Self.outputAndGradient(graph, x, seed, backend), (yf, dxf) = try Self.outputAndGradient(fused, x, seed, backend)
            XCTAssertEqual(yf, y, label)
            XCTAssertLessThan(relativeL2(doubles(dxf), doubles(dx)), 1e-6, label)
        }
    }

    /// ConvNeXt's layer scale, a per-channel Mul after the block's last linear layer and its
    /// transpose back to NCHW, is folded into that layer's weight and bias in every export; a
    /// scale along another axis is not. The folded graph computes what the unfolded one does,
    /// forward and backward, on every backend (the fixtures check it against onnxruntime and PyTorch).
    func testLayerScaleFoldsIntoTheLinearLayer() throws {
        func scales(_ g: Graph) -> Int {
            g.nodes.filter { n in
                // A scale is a constant of more than one element (not shape arithmetic's scalars).
                if case .binary(.mul) = n.op { return n.inputs.contains { (g.initializers[$0]?.shape.count ?? 0) > 1 } }
                return false
            }.count
        }
        for name in ["convnext_dynamo", "convnext_torchscript", "convnext_torchscript16"] {
            let loaded = try ONNXImporter.load(path: Self.directory + "/\(name)/model.onnx")
            XCTAssertGreaterThan(scales(loaded), 0, name)
            XCTAssertEqual(scales(try loaded.optimized()), 0, name)
        }
        // tokens [N, 6, 5, 4] -> linear to 6 features -> [N, 6, 6, 5] -> * gamma[6, 1, 1] (folded); beside
        // it the same with a scale along the rows, [6, 1], as long as the features but no column's (kept).
        let w = Tensor.uniform([4, 6], in: -1...1, seed: 81), b = Tensor.uniform([6], in: -1...1, seed: 82)
        let gamma = Tensor.uniform([6, 1, 1], in: 0.5...2, seed: 83), rows = Tensor.uniform([6, 1], in: 0.5...2, seed: 84)
        let graph = Graph(name: "scaled", inputs: [ValueInfo(name: "x", shape: [nil, 6, 5, 4])], outputs: [ValueInfo(name: "z", shape: [nil, 6, 6, 5])],
                          initializers: ["w": w, "b": b, "gamma": gamma, "rows": rows],
                          nodes: [Node(name: "linear", op: .matMul, inputs: ["x", "w", "b"], outputs: ["y"]),
                                  Node(name: "nchw", op: .transpose(perm: [0, 3, 1, 2]), inputs: ["y"], outputs: ["t"]),
                                  Node(name: "scale", op: .binary(.mul), inputs: ["gamma", "t"], outputs: ["s"]),
                                  Node(name: "linear2", op: .matMul, inputs: ["x", "w", "b"], outputs: ["y2"]),
                                  Node(name: "nchw2", op: .transpose(perm: [0, 3, 1, 2]), inputs: ["y2"], outputs: ["t2"]),
                                  Node(name: "rows", op: .binary(.mul), inputs: ["t2", "rows"], outputs: ["s2"]),
                                  Node(name: "sum", op: .binary(.add), inputs: ["s", "s2"], outputs: ["z"])])
        let folded = graph.foldingScalesIntoProducts()
        XCTAssertEqual(scales(folded), 1)
        XCTAssertEqual(folded.nodes.map(\.name), ["linear", "nchw", "linear2", "nchw2", "rows", "sum"])
        let x = Tensor.uniform([2, 6, 5, 4], in: -1...1, seed: 85), seed = Tensor.uniform([2, 6, 6, 5], in: -1...1, seed: 86)
        for (label, backend) in TestBackends.all() {
            let (y, dx) = try Self.outputAndGradient(graph, x, seed, backend), (yf, dxf) = try Self.outputAndGradient(folded, x, seed, backend)
            XCTAssertLessThan(relativeL2(doubles(yf), doubles(y)), 1e-6, label)
            XCTAssertLessThan(relativeL2(doubles(dxf), doubles(dx)), 1e-6, label)
        }
    }

    /// Every LayerNorm the opset-16 exports spell out becomes one op again: as many as the opset-17
    /// export of the same model has, and no ReduceMean or Sqrt left of them (the
    /// attention scale's square root is shape arithmetic, in both).
    func testLayerNormSpelledOutIsFused() throws {
        func count(_ g: Graph, _ match: (Op) -> Bool) -> Int { g.nodes.filter { match($0.op) }.count }
        for name in ["vit", "convnext", "swin"] {
            let fused = try ONNXImporter.load(path: Self.directory + "/\(name)_torchscript16/model.onnx").optimized()
            let native = try ONNXImporter.load(path: Self.directory + "/\(name)_torchscript/model.onnx").optimized()
            let norms = count(native) { if case .layerNorm = $0 { return true }; return false }
            XCTAssertGreaterThan(norms, 0, name)
            XCTAssertEqual(count(fused) { if case .layerNorm = $0 { return true }; return false }, norms, name)
            XCTAssertEqual(count(fused) { if case .unary(.sqrt) = $0 { return true }; return false },
                           count(native) { if case .unary(.sqrt) = $0 { return true }; return false }, name)
            XCTAssertEqual(count(fused) { if case .reduce(.mean, _, true) = $0 { return true }; return false },
                           count(native) { if case .reduce(.mean, _, true) = $0 { return true }; return false }, name)
        }
    }

    /// Grad-CAM at the default layer of a ViT (the last block's first LayerNorm, tokens laid on
    /// their grid) against pytorch-grad-cam with the usual reshape_transform; attention rollout and
    /// A fixture's folder, its graph as xai runs it, its input and its targets.
    static func fixture(_ name: String) throws -> (folder: String, graph: Graph, input: Tensor, target: [Int]) {
        let folder = directory + "/" + name
        return (folder, try ONNXImporter.load(path: folder + "/model.onnx").optimized(), try NPY.read(folder + "/input.npy"),
                try NPY.read(folder + "/target.npy").integers("fixture"))
    }

    /// Chefer et al.'s gradient-weighted rollout against the authors' algorithms run with PyTorch on
    /// the same model (Tools/make_architecture_fixtures.py), and their transformer attribution
    /// against the authors' own code (Tools/make_transformer_fixtures.py). Within 1e-4 on every backend.
    func testTransformerMethodsMatchTheirReferences() throws {
        for name in ["vit_dynamo", "vit_torchscript", "vit_torchscript16"] {
            let (folder, graph, input, target) = try Self.fixture(name)
            for (label, backend) in TestBackends.all() {
                let model = try ExplainedModel(graph: graph, backend: backend)
                let layer = try model.camLayer(nil)
                XCTAssertEqual(try model.camLayout(layer), .tokens(prefix: 1, height: 4, width: 4), "\(name): default layer \(layer)")
                let methods: [(String, any AttributionMethod)] = [
                    ("gradcam", GradientCAM(model: model)),
                    ("rollout", AttentionRollout(model: model, variant: .rollout)),
                    ("gradrollout", AttentionRollout(model: model, variant: .gradientWeighted)),
                    ("transformer_attribution", AttentionRollout(model: model, variant: .transformerAttribution)),
                ]
                for (reference, method) in methods {
                    let expected = try NPY.read(folder + "/\(reference).npy")
                    let got = try method.attribute(input, target: .perImage(target), baseline: .zero)
                    let raw = try XCTUnwrap(got.raw)
                    XCTAssertEqual(raw.shape, expected.shape, "\(reference) of \(name) on \(label)")
                    let error = relativeL2(doubles(raw), doubles(expected))
                    print("\(reference) of \(name) on \(label): relative L2 \(error) from the reference")
                    XCTAssertLessThan(error, 1e-4, "\(reference) of \(name) on \(label)")
                    XCTAssertEqual(got.map.shape, [2, 32, 32])
                }
            }
        }
    }

    /// The gradient CAMs and Score-CAM at a transformer's default layer, ViT's tokens and Swin's
    /// channels last, against pytorch-grad-cam with the usual reshape_transform
    /// (Tools/make_transformer_cam_fixtures.py; the ViT's Grad-CAM from make_architecture_fixtures.py),
    /// every export, every backend, as the registry builds them (their defaults); Grad-CAM++ is
    /// refused there, saying why.
    func testCAMFamilyOnTransformersMatchesPytorchGradCam() throws {
        for name in ["vit_dynamo", "vit_torchscript", "vit_torchscript16", "swin_dynamo", "swin_torchscript", "swin_torchscript16"] {
            let (folder, graph, input, target) = try Self.fixture(name)
            for (label, backend) in TestBackends.all() {
                let model = try ExplainedModel(graph: graph, backend: backend)
                // Grad-CAM++'s closed form needs piecewise-linear layers after the layer.
                XCTAssertThrowsError(try MethodRegistry.make("gradcampp", model: model, configuration: MethodConfiguration()).method
                    .attribute(input, target: .perImage(target), baseline: .zero)) { error in
                    XCTAssertTrue("\(error)".contains("not piecewise linear"), "\(error)")
                }
                for method in ["gradcam", "xgradcam", "layercam", "hirescam", "scorecam", "gradcamelementwise", "fem", "kpcacam"] {
                    let expected = try NPY.read(folder + "/\(method).npy")
                    let got = try MethodRegistry.make(method, model: model, configuration: MethodConfiguration()).method
                        .attribute(input, target: .perImage(target), baseline: .zero)
                    let raw = try XCTUnwrap(got.raw)
                    XCTAssertEqual(raw.shape, expected.shape, "\(method) of \(name) on \(label)")
                    let error = relativeL2(doubles(raw), doubles(expected))
                    print("\(method) of \(name) on \(label): relative L2 \(error) from pytorch-grad-cam")
                    // Swin's XGradCAM divides by channel sums near 0 after a LayerNorm: its
                    // reference is pytorch-grad-cam in float64, whose float32 map is 2.9e-3 from it.
                    XCTAssertLessThan(error, method == "xgradcam" && name.hasPrefix("swin") ? 1e-3 : 1e-4, "\(method) of \(name) on \(label)")
                }
            }
        }
    }

    /// Ablation-CAM at a transformer's default layer, ViT's tokens and Swin's channels last, against
    /// pytorch-grad-cam's AblationCAM with its ViT ablation layer (Tools/make_transformer_cam_fixtures.py),
    /// with pytorch-grad-cam's ablated value and with 0, every export, every backend, in batches of
    /// 5 and the default. Neither layer cuts the graph: the residual stream passes around the norm
    /// and is read, clean, by the layers after it.
    func testAblationCAMOnTransformersMatchesPytorchGradCam() throws {
        for name in ["vit_dynamo", "vit_torchscript", "vit_torchscript16", "swin_dynamo", "swin_torchscript", "swin_torchscript16"] {
            let (folder, graph, input, target) = try Self.fixture(name)
            for (label, backend) in TestBackends.all() {
                let model = try ExplainedModel(graph: graph, backend: backend)
                XCTAssertFalse(model.executor.nodesAfter(try model.camLayer(nil)).across.isEmpty, "\(name): the default layer cuts the graph")
                for (ablation, file) in [(AblationCAM.Ablation.auto, "ablationcam"), (.zero, "ablationcam_zero")] {
                    let expected = try NPY.read(folder + "/\(file).npy")
                    for batch in [5, nil] {
                        let got = try AblationCAM(model: model, relu: false, internalBatchSize: batch, ablation: ablation)
                            .attribute(input, target: .perImage(target), baseline: .zero)
                        let raw = try XCTUnwrap(got.raw)
                        XCTAssertEqual(raw.shape, expected.shape, "\(file) of \(name) on \(label)")
                        let error = relativeL2(doubles(raw), doubles(expected))
                        print("\(file) of \(name) on \(label), batch \(batch.map(String.init) ?? "default"): relative L2 \(error) from pytorch-grad-cam")
                        XCTAssertLessThan(error, 1e-4, "\(file) of \(name) on \(label), batch \(batch.map(String.init) ?? "default")")
                    }
                }
            }
        }
    }

    /// AttnLRP and CP-LRP against lxt 2.1 on the same models (Tools/make_transformer_fixtures.py),
    /// every export of the ViT and ConvNeXt (opset 16's spelled-out norms and GELUs included), on
    /// every backend: within 1e-4 relative L2.
    func testAttnLRPMatchesLXT() throws {
        let cases: [(String, [AttnLRP.Variant])] = ["vit_dynamo", "vit_torchscript", "vit_torchscript16"].map { ($0, [.attnLRP, .conservative]) }
            + ["convnext_dynamo", "convnext_torchscript", "convnext_torchscript16"].map { ($0, [.attnLRP]) }
        for (name, variants) in cases {
            let (folder, graph, input, target) = try Self.fixture(name)
            for (label, backend) in TestBackends.all() {
                let model = try ExplainedModel(graph: graph, backend: backend)
                for variant in variants {
                    let expected = try NPY.read(folder + "/\(variant == .attnLRP ? "attnlrp" : "cplrp").npy")
                    let got = try AttnLRP(model: model, variant: variant).attribute(input, target: .perImage(target), baseline: .zero)
                    let raw = try XCTUnwrap(got.raw)
                    XCTAssertEqual(raw.shape, expected.shape, "\(variant.rawValue) of \(name) on \(label)")
                    let error = relativeL2(doubles(raw), doubles(expected))
                    print("\(variant.rawValue) of \(name) on \(label): relative L2 \(error) from lxt")
                    XCTAssertLessThan(error, 1e-4, "\(variant.rawValue) of \(name) on \(label)")
                    let sums = try XCTUnwrap(got.diagnostics["relevanceSum"])
                    for b in 0..<2 {
                        let want = (0..<(expected.shape.count / 2)).reduce(0.0) { $0 + Double(expected.scalars[b * expected.shape.count / 2 + $1]) }
                        XCTAssertEqual(sums[b], want, accuracy: 1e-4 * max(1, abs(want)), "relevance sum of \(name) image \(b)")
                    }
                }
            }
        }
    }

    /// AttnLRP names the node it has no rule for (a division by an activation, a spelled-out
    /// function left unfused); CP-LRP needs attention to hold constant.
    func testAttnLRPRefusesWhatItHasNoRuleFor() throws {
        let cnn = try ExplainedModel(graph: try ONNXImporter.load(path: Self.directory + "/convnext_dynamo/model.onnx").optimized(), backend: CPUBackend())
        XCTAssertThrowsError(try AttnLRP(model: cnn, variant: .conservative).validate()) { error in
            XCTAssertTrue("\(error)".contains("no attention"), "\(error)")
        }
        // The opset-16 ViT as exported: its norms spelled out in Sub, Pow, Sqrt and Div.
        let raw = try ExplainedModel(graph: try ONNXImporter.load(path: Self.directory + "/vit_torchscript16/model.onnx"), backend: CPUBackend())
        XCTAssertThrowsError(try AttnLRP(model: raw).validate()) { error in
            XCTAssertTrue("\(error)".contains("attnlrp at") && "\(error)".contains("node '"), "\(error)")
        }
    }

    /// The attention methods name what they need on a model without it; a CAM layer that is no
    /// spatial or token tensor is refused with the layer named.
    func testTransformerMethodsRefuseWhatTheyCannotExplain() throws {
        let cnn = try ExplainedModel(graph: try ONNXImporter.load(path: Self.directory + "/convnext_dynamo/model.onnx").optimized(), backend: CPUBackend())
        XCTAssertThrowsError(try AttentionRollout(model: cnn).attribute(try NPY.read(Self.directory + "/convnext_dynamo/input.npy"), target: .predicted, baseline: .zero)) { error in
            XCTAssertTrue("\(error)".contains("no attention"), "\(error)")
        }
        // Swin's attention is windowed: 4x4 windows, not the image's tokens.
        let swin = try ExplainedModel(graph: try ONNXImporter.load(path: Self.directory + "/swin_dynamo/model.onnx").optimized(), backend: CPUBackend())
        XCTAssertThrowsError(try AttentionRollout(model: swin).validate()) { error in
            XCTAssertTrue("\(error)".contains("tokens"), "\(error)")
        }
        let vit = try ExplainedModel(graph: try ONNXImporter.load(path: Self.directory + "/vit_dynamo/model.onnx").optimized(), backend: CPUBackend())
        XCTAssertThrowsError(try vit.camLayer(vit.graph.outputs[0].name)) { error in
            XCTAssertTrue("\(error)".contains(vit.graph.outputs[0].name) && "\(error)".contains("not a 4-D activation"), "\(error)")
        }
    }

    /// Swin and ConvNeXt get a CAM at their default layer with every backend agreeing; Swin's
    /// default is its last block's first norm, channels last.
    func testCAMsOnSwinAndConvNeXt() throws {
        for name in ["swin_dynamo", "swin_torchscript", "convnext_dynamo", "convnext_torchscript"] {
            let folder = Self.directory + "/" + name
            let graph = try ONNXImporter.load(path: folder + "/model.onnx").optimized()
            let input = try NPY.read(folder + "/input.npy")
            var maps: [Tensor] = []
            for (_, backend) in TestBackends.all() {
                let model = try ExplainedModel(graph: graph, backend: backend)
                if name.hasPrefix("swin") { XCTAssertEqual(try model.camLayout(try model.camLayer(nil)), .channelsLast, name) }
                maps.append(try GradientCAM(model: model).attribute(input, target: .index(2), baseline: .zero).map)
            }
            for m in maps.dropFirst() { XCTAssertLessThan(relativeL2(doubles(m), doubles(maps[0])), 1e-4, name) }
            XCTAssertGreaterThan(maps[0].scalars.map(abs).max() ?? 0, 0, name)
            // The final norm's channels-last output and its permutation to channels first (the
            // layer before pooling) are the same layer: the same CAM.
            let model = try ExplainedModel(graph: graph, backend: CPUBackend())
            let nchw = try XCTUnwrap(try model.summary().lastSpatialActivation)
            guard let p = graph.producers[nchw], case .transpose = graph.nodes[p].op else { continue }
            let nhwc = graph.nodes[p].inputs[0]
            XCTAssertEqual(try model.camLayout(nhwc), .channelsLast, name)
            XCTAssertEqual(try model.camLayout(nchw), .channelsFirst, name)
            let a = try GradientCAM(model: model, layer: nhwc).attribute(input, target: .index(2), baseline: .zero)
            let b = try GradientCAM(model: model, layer: nchw).attribute(input, target: .index(2), baseline: .zero)
            XCTAssertLessThan(relativeL2(doubles(try XCTUnwrap(a.raw)), doubles(try XCTUnwrap(b.raw))), 1e-6, name)
        }
    }

    /// Slices with steps on activations (Swin's patch merging; odd extents so the last step runs
    /// past the end): forward equal to the host's float64 slice, backward the adjoint of the
    /// forward (<slice(x), g> = <x, slice'(g)> for random x and g), on every backend.
    func testSteppedSlicesAndTheirGradients() throws {
        let starts = Tensor(unchecked: [3], [1, 0, -2]), ends = Tensor(unchecked: [3], [7, 9, 3]), axes = Tensor(unchecked: [3], [2, 3, 1])
        let steps = Tensor(unchecked: [3], [2, 3, 1])
        let graph = Graph(name: "stepped", inputs: [ValueInfo(name: "x", shape: [nil, 3, 8, 9])], outputs: [ValueInfo(name: "y", shape: [nil, 2, 3, 3])],
                          initializers: ["s": starts, "e": ends, "a": axes, "st": steps],
                          nodes: [Node(name: "slice", op: .slice, inputs: ["x", "s", "e", "a", "st"], outputs: ["y"])])
        let x = Tensor.uniform([2, 3, 8, 9], seed: 71)
        // The host reference: constant folding runs Slice in float64 on the host.
        let folded = try Graph(name: "folded", inputs: [ValueInfo(name: "z", shape: [1])], outputs: [ValueInfo(name: "w", shape: [nil])],
                               initializers: ["x": x, "s": starts, "e": ends, "a": axes, "st": steps],
                               nodes: [Node(name: "slice", op: .slice, inputs: ["x", "s", "e", "a", "st"], outputs: ["y"]),
                                       Node(name: "add", op: .binary(.add), inputs: ["y", "z"], outputs: ["w"])]).foldingConstants()
        let expected = try XCTUnwrap(folded.initializers["y"])
        XCTAssertEqual(expected.shape, [2, 2, 3, 3])
        for (label, backend) in TestBackends.all() {
            let executor = Executor(graph: graph, backend: backend)
            let pass = try executor.forward(try backend.upload(x), forBackward: true)
            let y = try backend.download(try pass.output("y"))
            XCTAssertEqual(y, expected, label)
            let g = Tensor.uniform(y.shape, seed: 72)
            let dx = try backend.download(try executor.backward(pass, seeds: ["y": try backend.upload(g)], wrt: ["x"])["x"]!)
            let r = Tensor.uniform(x.shape, seed: 73)
            let ry = try backend.download(try executor.forward(try backend.upload(r)).output("y"))
            let lhs = zip(ry.scalars, g.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let rhs = zip(r.scalars, dx.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            XCTAssertEqual(lhs, rhs, accuracy: 1e-5, label)
            XCTAssertEqual(dx.scalars.filter { $0 != 0 }.count, g.shape.count, label)
        }
    }

    /// Shape arithmetic fed by the batch (a Reshape to `[N, -1]`, a factor of `N * sqrt(W)` as ViT's
    /// attention scale is made): the executor keeps such values per input shape, so alternating batch
    /// sizes must each get their own; and no gradient flows through them (dy/dx = N * sqrt(W)).
    func testShapeArithmeticFollowsTheBatchAndCarriesNoGradient() throws {
        let graph = Graph(name: "shapes", inputs: [ValueInfo(name: "x", shape: [nil, 4, 6])], outputs: [ValueInfo(name: "y", shape: [nil, 24])],
                          initializers: ["zero": Tensor(unchecked: [], [0]), "two": Tensor(unchecked: [], [2]), "rest": Tensor(unchecked: [1], [-1])],
                          nodes: [Node(name: "shape", op: .shape(start: 0, end: nil), inputs: ["x"], outputs: ["s"]),
                                  Node(name: "batch", op: .gather(axis: 0), inputs: ["s", "zero"], outputs: ["n"]),
                                  Node(name: "width", op: .gather(axis: 0), inputs: ["s", "two"], outputs: ["w"]),
                                  Node(name: "root", op: .unary(.sqrt), inputs: ["w"], outputs: ["r"]),
                                  Node(name: "factor", op: .binary(.mul), inputs: ["n", "r"], outputs: ["f"]),
                                  Node(name: "unsqueeze", op: .reshape(allowZero: false), inputs: ["n", "rest"], outputs: ["n1"]),
                                  Node(name: "target", op: .concat(axis: 0), inputs: ["n1", "rest"], outputs: ["t"]),
                                  Node(name: "flatten", op: .reshape(allowZero: false), inputs: ["x", "t"], outputs: ["xf"]),
                                  Node(name: "scale", op: .binary(.mul), inputs: ["xf", "f"], outputs: ["y"])])
        for (label, backend) in TestBackends.all() {
            let executor = Executor(graph: graph, backend: backend)
            for n in [2, 3, 2, 1] {
                let x = Tensor.uniform([n, 4, 6], seed: UInt64(90 + n))
                let factor = Float(n) * Float(6).squareRoot()
                let pass = try executor.forward(try backend.upload(x), forBackward: true)
                let y = try backend.download(try pass.output("y"))
                XCTAssertEqual(y.shape, [n, 24], "\(label), batch \(n)")
                XCTAssertLessThan(relativeL2(doubles(y), x.scalars.map { Double($0 * factor) }), 1e-6, "\(label), batch \(n)")
                let g = Tensor.uniform(y.shape, seed: 95)
                let dx = try backend.download(try executor.backward(pass, seeds: ["y": try backend.upload(g)], wrt: ["x"])["x"]!)
                XCTAssertLessThan(relativeL2(doubles(dx), g.scalars.map { Double($0 * factor) }), 1e-6, "\(label), batch \(n)")
            }
        }
    }

    /// The spelled-out norm with a large epsilon (so dropping it shows), `d * d` for the square, and
    /// `gamma * n + beta` in either operand order: fused to one op with the same outputs; with the
    /// centred value also read elsewhere, or means over a middle axis, it stays as it is.
    func testLayerNormFusionKeepsEpsilonAndAffine() throws {
        let initializers: [String: Tensor] = ["eps": Tensor(unchecked: [], [0.5]), "gamma": Tensor.uniform([6], seed: 1),
                                              "beta": Tensor.uniform([1, 6], seed: 2)]
        func graph(extraReader: Bool, axis: Int = -1) -> Graph {
            var nodes = [Node(name: "mean", op: .reduce(.mean, axes: [axis], keepDims: true), inputs: ["x"], outputs: ["m"]),
                         Node(name: "sub", op: .binary(.sub), inputs: ["x", "m"], outputs: ["d"]),
                         Node(name: "square", op: .binary(.mul), inputs: ["d", "d"], outputs: ["d2"]),
                         Node(name: "var", op: .reduce(.mean, axes: [axis], keepDims: true), inputs: ["d2"], outputs: ["v"]),
                         Node(name: "plus", op: .binary(.add), inputs: ["v", "eps"], outputs: ["ve"]),
                         Node(name: "root", op: .unary(.sqrt), inputs: ["ve"], outputs: ["s"]),
                         Node(name: "div", op: .binary(.div), inputs: ["d", "s"], outputs: ["n"]),
                         Node(name: "scale", op: .binary(.mul), inputs: ["gamma", "n"], outputs: ["ng"]),
                         Node(name: "shift", op: .binary(.add), inputs: ["ng", "beta"], outputs: ["y"])]
            if extraReader { nodes.append(Node(name: "other", op: .binary(.add), inputs: ["y", "d"], outputs: ["z"])) }
            return Graph(name: "ln", inputs: [ValueInfo(name: "x", shape: [nil, 5, 6])],
                         outputs: [ValueInfo(name: extraReader ? "z" : "y", shape: [nil, 5, 6])], initializers: initializers, nodes: nodes)
        }
        for (label, backend) in TestBackends.all() {
            let x = try backend.upload(Tensor.uniform([2, 5, 6], in: -2...2, seed: 3))
            for (extraReader, axis) in [(false, -1), (true, -1), (false, 1)] {
                let raw = graph(extraReader: extraReader, axis: axis), fused = try raw.optimized()
                let norms = fused.nodes.filter { if case .layerNorm = $0.op { return true }; return false }.count
                XCTAssertEqual(norms, extraReader || axis != -1 ? 0 : 1)
                let output = raw.outputs[0].name
                let a = try backend.download(try Executor(graph: raw, backend: backend).forward(x).output(output))
                let b = try backend.download(try Executor(graph: fused, backend: backend).forward(x).output(output))
                XCTAssertLessThan(relativeL2(doubles(a), doubles(b)), 1e-6, "extra reader \(extraReader), axis \(axis), on \(label)")
            }
        }
    }

    /// ReduceL2 (decomposed at import into x^2, ReduceSum, Sqrt) and ReduceMax over the spatial axes,
    /// against float64 sums (the fuzz seed Tools/make_onnx_seeds.py writes).
    func testReduceL2AndReduceMax() throws {
        let path = fixturesDirectory + "/../../Fuzz/Corpus/onnx/arch_reduce_l2_sum_max.onnx"
        let graph = try ONNXImporter.load(path: path).optimized()
        let x = Tensor.uniform([1, 3, 4, 4], seed: 81)
        let expected = (0..<3).map { c -> Double in
            let plane = x.scalars[(c * 16)..<((c + 1) * 16)].map(Double.init)
            return plane.reduce(0) { $0 + $1 * $1 }.squareRoot() + (plane.max() ?? 0)
        }
        for (label, backend) in TestBackends.all() {
            let y = try backend.download(try Executor(graph: graph, backend: backend).forward(try backend.upload(x)).output("y"))
            XCTAssertEqual(y.shape, [1, 3, 1, 1], label)
            XCTAssertLessThan(relativeL2(doubles(y), expected), 1e-6, label)
        }
    }

    /// The TorchScript exporter spells GELU out through Erf; the rewrite makes each one GELU again
    /// (the fixture tests check the logits and gradients of the rewritten graphs).
    func testGELUSpelledOutThroughErfIsFused() throws {
        for (name, count) in [("vit_torchscript", 2), ("convnext_torchscript", 2), ("swin_torchscript", 3)] {
            let raw = try ONNXImporter.load(path: Self.directory + "/\(name)/model.onnx")
            let optimized = try raw.optimized()
            let erfs = optimized.nodes.filter { if case .unary(.erf) = $0.op { return true }; return false }.count
            let gelus = optimized.nodes.filter { if case .unary(.gelu) = $0.op { return true }; return false }.count
            XCTAssertEqual(erfs, 0, name)
            XCTAssertEqual(gelus, count, name)
            XCTAssertEqual(raw.nodes.filter { if case .unary(.erf) = $0.op { return true }; return false }.count, count, name)
        }
    }

    /// A linear layer on tokens, `MatMul(x, W) + b`, becomes one product that starts from its bias.
    func testLinearLayersTakeTheirBias() throws {
        for name in ["vit_torchscript", "convnext_dynamo", "swin_torchscript"] {
            let optimized = try ONNXImporter.load(path: Self.directory + "/\(name)/model.onnx").optimized()
            let withBias = optimized.nodes.filter { if case .matMul = $0.op { return $0.inputs.count == 3 }; return false }
            XCTAssertGreaterThanOrEqual(withBias.count, 2, name)
            for n in withBias { XCTAssertNotNil(optimized.initializers[n.inputs[2]], "\(name): \(n.name)") }
        }
    }

    /// A residual sum fuses into the convolution that feeds it whichever side of the Add the
    /// convolution is on, and the fused graph computes the same values.
    func testResidualAddsFuseWithTheConvolutionOnEitherSide() throws {
        for convolutionFirst in [true, false] {
            let nodes = [
                Node(name: "stem", op: .unary(.tanh), inputs: ["input"], outputs: ["skip"]),
                Node(name: "conv", op: .conv(Conv2DParams(padding: 1), activation: .identity, autoPad: .explicit), inputs: ["skip", "w", "b"], outputs: ["c"]),
                Node(name: "add", op: .binary(.add), inputs: convolutionFirst ? ["c", "skip"] : ["skip", "c"], outputs: ["out"]),
            ]
            let graph = Graph(name: "residual", inputs: [ValueInfo(name: "input", shape: [nil, 4, 6, 5])], outputs: [ValueInfo(name: "out", shape: [nil, 4, 6, 5])],
                              initializers: ["w": .uniform([4, 4, 3, 3], seed: 81), "b": .uniform([4], seed: 82)], nodes: nodes)
            let fused = graph.fusingResidualAdds()
            XCTAssertEqual(fused.nodes.count, 2, "convolution first: \(convolutionFirst)")
            XCTAssertEqual(fused.nodes.last?.inputs.last, "skip", "the skip is the fused convolution's fourth input")
            let x = Tensor.uniform([2, 4, 6, 5], seed: 83)
            for (label, be) in TestBackends.all() {
                let a = try be.download(try Executor(graph: graph, backend: be).forward(try be.upload(x)).output("out"))
                let b = try be.download(try Executor(graph: fused, backend: be).forward(try be.upload(x)).output("out"))
                XCTAssertLessThan(relativeL2(doubles(a), doubles(b)), 1e-6, "convolution first: \(convolutionFirst), on \(label)")
            }
        }
    }

    /// LayerNorm over a middle axis with a scale broadcast over the last, against its definition
    /// computed here in float64 (the op table compares backends with the reference, which shares
    /// the dispatch between the primitive and the composed form).
    func testLayerNormOverAMiddleAxisMatchesItsDefinition() throws {
        let x = Tensor.uniform([3, 6, 4], in: -2...3, seed: 91), scale = Tensor.uniform([6, 4], in: 0.5...1.5, seed: 92)
        var expected = [Double](repeating: 0, count: x.shape.count)
        for n in 0..<3 {
            for k in 0..<4 {
                let column = (0..<6).map { Double(x.scalars[(n * 6 + $0) * 4 + k]) }
                let mean = column.reduce(0, +) / 6
                let variance = column.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 6
                for c in 0..<6 {
                    expected[(n * 6 + c) * 4 + k] = (column[c] - mean) / (variance + 1e-5).squareRoot() * Double(scale.scalars[c * 4 + k])
                }
            }
        }
        for (label, backend) in TestBackends.all() {
            let y = try backend.download(try backend.layerNorm(try backend.upload(x), axes: [1], epsilon: 1e-5, scale: try backend.upload(scale), bias: nil))
            XCTAssertLessThan(relativeL2(doubles(y), expected), 1e-6, label)
        }
    }

    /// Only the exact GELU chain is fused: `x (1 + erf(x / sqrt 2)) c` is GELU for c = 0.5 and is
    /// left alone (same outputs as exported) for any other c.
    func testGELUFusionMatchesOnlyTheExactChain() throws {
        for (factor, fused) in [(Float(0.5), true), (0.7, false)] {
            let graph = Graph(name: "gelu-like", inputs: [ValueInfo(name: "x", shape: [nil, 5])], outputs: [ValueInfo(name: "y", shape: [nil, 5])],
                              initializers: ["root2": Tensor(unchecked: [], [Float(2).squareRoot()]), "one": Tensor(unchecked: [], [1]),
                                             "c": Tensor(unchecked: [], [factor])],
                              nodes: [Node(name: "div", op: .binary(.div), inputs: ["x", "root2"], outputs: ["d"]),
                                      Node(name: "erf", op: .unary(.erf), inputs: ["d"], outputs: ["e"]),
                                      Node(name: "plus", op: .binary(.add), inputs: ["e", "one"], outputs: ["p"]),
                                      Node(name: "times", op: .binary(.mul), inputs: ["x", "p"], outputs: ["m"]),
                                      Node(name: "scale", op: .binary(.mul), inputs: ["m", "c"], outputs: ["y"])])
            let optimized = try graph.optimized()
            XCTAssertEqual(optimized.nodes.count == 1, fused, "factor \(factor)")
            for (label, backend) in TestBackends.all() {
                let x = try backend.upload(Tensor.uniform([2, 5], in: -3...3, seed: 93))
                let a = try backend.download(try Executor(graph: graph, backend: backend).forward(x).output("y"))
                let b = try backend.download(try Executor(graph: optimized, backend: backend).forward(x).output("y"))
                XCTAssertLessThan(relativeL2(doubles(a), doubles(b)), 1e-6, "factor \(factor), on \(label)")
            }
        }
    }

    /// InstanceNormalization (GroupNorm with one group exports through it) against its definition,
    /// forward on every backend and its input gradient against central differences of it.
    func testInstanceNormalization() throws {
        let path = fixturesDirectory + "/../../Fuzz/Corpus/onnx/arch_instancenorm.onnx"
        let graph = try ONNXImporter.load(path: path).optimized()
        let x = Tensor.uniform([1, 3, 4, 4], in: -2...3, seed: 95)
        let (scale, bias): ([Double], [Double]) = ([0.5, 1, 2], [0.1, -0.2, 0.3])
        func reference(_ v: [Double]) -> [Double] {
            var out = [Double](repeating: 0, count: v.count)
            for c in 0..<3 {
                let plane = Array(v[(c * 16)..<((c + 1) * 16)])
                let mean = plane.reduce(0, +) / 16
                let variance = plane.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 16
                for i in 0..<16 { out[c * 16 + i] = (plane[i] - mean) / (variance + 1e-5).squareRoot() * scale[c] + bias[c] }
            }
            return out
        }
        let expected = reference(doubles(x))
        let seed = Tensor.uniform([1, 3, 4, 4], seed: 96)
        var numeric = [Double](repeating: 0, count: 48)
        for i in 0..<48 {
            var plus = doubles(x), minus = doubles(x)
            plus[i] += 1e-6
            minus[i] -= 1e-6
            numeric[i] = zip(zip(reference(plus), reference(minus)), doubles(seed)).reduce(0) { $0 + ($1.0.0 - $1.0.1) / 2e-6 * $1.1 }
        }
        for (label, backend) in TestBackends.all() {
            let executor = Executor(graph: graph, backend: backend)
            let pass = try executor.forward(try backend.upload(x), forBackward: true)
            XCTAssertLessThan(relativeL2(doubles(try backend.download(try pass.output("y"))), expected), 1e-6, label)
            let dx = try backend.download(try executor.backward(pass, seeds: ["y": try backend.upload(seed)], wrt: ["x"])["x"]!)
            XCTAssertLessThan(relativeL2(doubles(dx), numeric), 1e-4, label)
        }
    }
}

/// Hugging Face transformers' classifiers (Tools/make_hf_fixtures.py): ViT with the dynamo
/// exporter's NaN guards, DINOv2 with bicubic position embeddings, BEiT's resized bias table,
/// Swin's token pooling.
final class HuggingFaceFixtureTests: XCTestCase {
    static let directory = fixturesDirectory + "/hf"

    func testEveryModelAndExporterIsPresent() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.directory).filter { !$0.hasSuffix(".json") }.sorted()
        XCTAssertEqual(names, ["beit_torchscript", "dinov2_dynamo", "dinov2_torchscript", "swin_torchscript", "vit_dynamo", "vit_torchscript"])
    }

    func testViTDynamo() throws { try ArchitectureFixtureTests.check("vit_dynamo", in: Self.directory, asExported: false) }
    func testViTTorchScript() throws { try ArchitectureFixtureTests.check("vit_torchscript", in: Self.directory) }
    func testDINOv2Dynamo() throws { try ArchitectureFixtureTests.check("dinov2_dynamo", in: Self.directory, asExported: false) }
    func testDINOv2TorchScript() throws { try ArchitectureFixtureTests.check("dinov2_torchscript", in: Self.directory) }
    func testBEiTTorchScript() throws { try ArchitectureFixtureTests.check("beit_torchscript", in: Self.directory) }
    func testSwinTorchScript() throws { try ArchitectureFixtureTests.check("swin_torchscript", in: Self.directory) }

    /// The dynamo export guards each attention's softmax against NaN; the guard is rewritten away
    /// (a softmax of finite scores has none). A guard on anything else stays host arithmetic: it
    /// runs forward, and a gradient through it is refused with the node's name, never dropped.
    func testNaNGuardsOnSoftmaxAreRemovedAndOthersRefused() throws {
        let raw = try ONNXImporter.load(path: Self.directory + "/vit_dynamo/model.onnx")
        func guards(_ g: Graph) -> Int { g.nodes.filter { if case .hostArithmetic(.isNaN) = $0.op { return true }; return false }.count }
        XCTAssertEqual(guards(raw), 2)
        XCTAssertEqual(guards(try raw.optimized()), 0)
        let graph = Graph(name: "guarded", inputs: [ValueInfo(name: "x", shape: [nil, 4])], outputs: [ValueInfo(name: "y", shape: [nil, 4])],
                          initializers: ["zero": Tensor(unchecked: [], [0])],
                          nodes: [Node(name: "exp", op: .unary(.exp), inputs: ["x"], outputs: ["e"]),
                                  Node(name: "nan", op: .hostArithmetic(.isNaN), inputs: ["e"], outputs: ["n"]),
                                  Node(name: "guard", op: .hostArithmetic(.where), inputs: ["n", "zero", "e"], outputs: ["y"])])
        let kept = try graph.optimized()
        XCTAssertEqual(guards(kept), 1)
        let backend = CPUBackend()
        let executor = Executor(graph: kept, backend: backend)
        let pass = try executor.forward(try backend.upload(Tensor.uniform([2, 4], seed: 5)), forBackward: true)
        XCTAssertThrowsError(try executor.backward(pass, seeds: ["y": try backend.upload(Tensor.uniform([2, 4], seed: 6))], wrt: ["x"])) { error in
            XCTAssertTrue("\(error)".contains("'guard'") && "\(error)".contains("Where"), "\(error)")
        }
    }
}
