import Foundation
import XCTest
import XAI
import XAIDemoData
import XAITestSupport

/// The method registry and its configuration, errors spelled as flags on the command line, and the
/// demo built into the binary.
final class RegistryAndDemoTests: XCTestCase {
    let model = fixturesDirectory + "/models/small_resnet/model.onnx"
    let tensor = fixturesDirectory + "/models/small_resnet/input.npy"


    func testConfigurationParsesKnobsAndNamesWhatIsWrong() throws {
        let c = try MethodConfiguration.parse(json: Data(#"{"steps": 7, "rule": "middle", "layer": "x"}"#.utf8))
        XCTAssertEqual(c.steps, 7)
        XCTAssertEqual(c.rule, "middle")
        XCTAssertEqual(c.layer, "x")
        XCTAssertEqual(c.window, MethodConfiguration().window, "an absent knob keeps its default")
        for (json, parameter) in [(#"{"stepz": 7}"#, "stepz"), (#"{"steps": "many"}"#, "steps"), ("[1, 2]", "configuration"), ("{", "configuration")] {
            XCTAssertThrowsError(try MethodConfiguration.parse(json: Data(json.utf8)), json) { error in
                guard case XAIError.invalidArgument(let p, _, _) = error else { return XCTFail("\(json): \(error)") }
                XCTAssertEqual(p, parameter, json)
            }
        }
    }

    func testRegistryBuildsEveryMethodAndNamesBadKnobs() throws {
        let explained = try ExplainedModel(graph: try Models.load(model), backend: CPUBackend())
        let all = try MethodRegistry.expand("all", model: explained)
        XCTAssertEqual(all, MethodRegistry.names.filter { try! MethodRegistry.spec($0).applies(to: explained) })
        XCTAssertEqual(try MethodRegistry.expand("ig, gradcam,ig", model: explained), ["ig", "gradcam"])
        var c = MethodConfiguration()
        c.steps = 6
        c.samples = 6
        c.masks = 6
        c.iterations = 2
        let input = try ExplainedModel.image(try NPY.read(tensor), 0)
        for name in all {
            let configured = try MethodRegistry.make(name, model: explained, configuration: c)
            XCTAssertEqual(configured.method.name.hasPrefix(name == "smoothgrad" ? "smoothgrad" : name), true, name)
            let a = try configured.method.attribute(input, target: .predicted, baseline: configured.baseline)
            XCTAssertEqual(a.map.shape, [1, 64, 64], name)
        }
        c.rule = "simpson"
        XCTAssertThrowsError(try MethodRegistry.make("ig", model: explained, configuration: c)) { error in
            guard case XAIError.invalidArgument("rule", "simpson", _) = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try MethodRegistry.expand("nonsense", model: explained)) { error in
            guard case XAIError.invalidArgument("method", "nonsense", _) = error else { return XCTFail("\(error)") }
        }
    }

    /// Every knob is described once (type, range, default) and the registry checks ranges and
    /// choices before building a method; defaults per method override the knob's own.
    func testKnobsAreDescribedOnceAndChecked() throws {
        XCTAssertEqual(MethodConfiguration.knobs.map(\.name), MethodConfiguration.knobNames)
        let defaults = MethodConfiguration.defaults
        XCTAssertEqual(defaults["steps"] as? Int, 50)
        XCTAssertEqual(defaults["relu"] as? Bool, true)
        XCTAssertNil(defaults["layer"], "no default layer: the model decides")
        XCTAssertEqual(try MethodRegistry.spec("smoothgrad").defaultValue("samples") as? Int, 50)
        XCTAssertEqual(try MethodRegistry.spec("kernelshap").defaultValue("samples") as? Int, 1000)
        // The score each perturbation method reads by default: Captum's logit, the papers' probability.
        for (method, score) in [("occlusion", "logit"), ("lime", "logit"), ("kernelshap", "logit"), ("rise", "probability"), ("mp", "probability")] {
            XCTAssertEqual(try MethodRegistry.spec(method).defaultValue("score") as? String, score, method)
        }
        for spec in MethodRegistry.methods {
            for knob in spec.knobs { XCTAssertNoThrow(try MethodConfiguration.knob(knob), "\(spec.name) reads an undescribed knob \(knob)") }
        }
        let explained = try ExplainedModel(graph: try Models.load(model), backend: CPUBackend())
        let cases: [(String, String, String)] = [
            ("ig", #"{"steps": 0}"#, "steps"), ("ig", #"{"steps": 100001}"#, "steps"), ("ig", #"{"rule": "simpson"}"#, "rule"),
            ("lime", #"{"segmentation": "watershed"}"#, "segmentation"), ("rise", #"{"masks": 1}"#, "masks"),
            ("occlusion", #"{"stride": 0}"#, "stride"), ("mp", #"{"score": "odds"}"#, "score"), ("smoothgrad", #"{"noise": -0.5}"#, "noise"), ("scorecam", #"{"batch": 0}"#, "batch"),
        ]
        for (method, json, knob) in cases {
            let c = try MethodConfiguration.parse(json: Data(json.utf8))
            XCTAssertThrowsError(try MethodRegistry.make(method, model: explained, configuration: c), json) { error in
                guard case XAIError.invalidArgument(let p, _, _) = error else { return XCTFail("\(json): \(error)") }
                XCTAssertEqual(p, knob, json)
            }
        }
        // The knob reaches each method, and unset leaves its own default.
        func outputs(_ json: String) throws -> [ScoreOutput] {
            let c = try MethodConfiguration.parse(json: Data(json.utf8))
            func make(_ name: String) throws -> any AttributionMethod { try MethodRegistry.make(name, model: explained, configuration: c).method }
            return [try XCTUnwrap(make("occlusion") as? Occlusion).engine.output, try XCTUnwrap(make("lime") as? LIME).engine.output,
                    try XCTUnwrap(make("kernelshap") as? KernelSHAP).engine.output, try XCTUnwrap(make("rise") as? RISE).engine.output,
                    try XCTUnwrap(make("mp") as? MeaningfulPerturbation).output]
        }
        XCTAssertEqual(try outputs("{}"), [.logit, .logit, .logit, .probability, .probability])
        XCTAssertEqual(try outputs(#"{"score": "logit"}"#), Array(repeating: .logit, count: 5))
        XCTAssertEqual(try outputs(#"{"score": "probability"}"#), Array(repeating: .probability, count: 5))
        // A knob a method does not read is not checked for it.
        XCTAssertNoThrow(try MethodRegistry.make("saliency", model: explained, configuration: try MethodConfiguration.parse(json: Data(#"{"steps": 0}"#.utf8))))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: MethodRegistry.json()) as? [String: Any])
        XCTAssertEqual((json["methods"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, MethodRegistry.names)
    }

    /// Costs in forward-equivalents per image (the benchmark's floor) from the registry, for the
    /// method's knobs and the model.
    func testCostsFollowTheKnobsAndTheModel() throws {
        let explained = try ExplainedModel(graph: try Models.load(model), backend: CPUBackend())
        var c = MethodConfiguration()
        func cost(_ name: String) throws -> MethodCost { try MethodRegistry.spec(name).cost(for: explained, configuration: c) }
        XCTAssertEqual(try cost("saliency"), MethodCost(evaluations: 1, forwardEquivalents: 2))
        XCTAssertEqual(try cost("gradcam"), MethodCost(evaluations: 1, forwardEquivalents: 1))
        XCTAssertEqual(try cost("ig"), MethodCost(evaluations: 53, forwardEquivalents: 103))
        XCTAssertEqual(try cost("smoothgrad"), MethodCost(evaluations: 51, forwardEquivalents: 102))
        XCTAssertEqual(try cost("kernelshap"), MethodCost(evaluations: 1003, forwardEquivalents: 1003))
        XCTAssertEqual(try cost("mp"), MethodCost(evaluations: 302, forwardEquivalents: 603))
        // 64x64 input, window 16, stride 8: 7 x 7 windows.
        XCTAssertEqual(try cost("occlusion"), MethodCost(evaluations: 50, forwardEquivalents: 50))
        c.steps = 10
        c.samples = 20
        c.stride = 16
        XCTAssertEqual(try cost("ig").forwardEquivalents, 23)
        XCTAssertEqual(try cost("lime").evaluations, 21)
        XCTAssertEqual(try cost("occlusion").evaluations, 17)
        let channels = try explained.summary().shapes[try explained.camLayer(nil)]![1]
        XCTAssertEqual(try cost("scorecam").evaluations, Double(channels + 1))
        // Ablation-CAM's copies run the layers after the layer, here global pooling and the
        // linear head: 2 x channels x classes of the forward's FLOPs.
        let summary = try explained.summary(), classes = try XCTUnwrap(summary.shapes[explained.outputName])[1]
        let after = 2 * Double(channels) * Double(classes)
        let ablation = try cost("ablationcam")
        XCTAssertEqual(ablation.evaluations, Double(channels + 1))
        XCTAssertEqual(ablation.forwardEquivalents, 1 + Double(channels) * after / summary.flopsPerImage, accuracy: 1e-9)
    }

    /// A progress callback that throws stops a perturbation method with its error (how the C
    /// interface cancels).
    func testProgressCanCancel() throws {
        let explained = try ExplainedModel(graph: try Models.load(model), backend: CPUBackend())
        let input = try ExplainedModel.image(try NPY.read(tensor), 0)
        let calls = Counter()
        let occlusion = Occlusion(model: explained, window: (16, 16), stride: (8, 8), perturbationsPerEval: 8) { done, _ in
            calls.increment()
            if done >= 16 { throw XAIError.cancelled(operation: "occlusion") }
        }
        XCTAssertThrowsError(try occlusion.attribute(input)) { error in
            XCTAssertEqual((error as? XAIError)?.code, .cancelled, "\(error)")
        }
        XCTAssertEqual(calls.value, 2, "stopped at the batch that cancelled")
    }

    /// Score-CAM and Ablation-CAM, built by the registry with a progress callback, report each
    /// batch's channels done of the layer's, ending at all of them, and stop with the error the
    /// callback throws.
    func testChannelMethodsReportProgressAndCancel() throws {
        let explained = try ExplainedModel(graph: try Models.load(model), backend: CPUBackend())
        let input = try ExplainedModel.image(try NPY.read(tensor), 0)
        let channels = try explained.camChannels(try explained.camLayer(nil))
        XCTAssertGreaterThan(channels, 10)
        var c = MethodConfiguration()
        c.batch = 4
        for name in ["scorecam", "ablationcam"] {
            let log = ProgressLog()
            let method = try MethodRegistry.make(name, model: explained, configuration: c,
                                                 context: MethodContext(progress: { done, total in log.append(done, total) })).method
            _ = try method.attribute(input, target: .predicted, baseline: .zero)
            let done = Array(stride(from: 4, to: channels, by: 4)) + [channels]
            XCTAssertEqual(log.calls.map(\.done), done, name)
            XCTAssertEqual(Set(log.calls.map(\.total)), [channels], name)
            let calls = Counter()
            let cancelling = try MethodRegistry.make(name, model: explained, configuration: c, context: MethodContext(progress: { done, _ in
                calls.increment()
                if done >= 8 { throw XAIError.cancelled(operation: name) }
            })).method
            XCTAssertThrowsError(try cancelling.attribute(input, target: .predicted, baseline: .zero)) { error in
                XCTAssertEqual((error as? XAIError)?.code, .cancelled, "\(name): \(error)")
            }
            XCTAssertEqual(calls.value, 2, "\(name) stopped at the batch that cancelled")
        }
    }

    /// The library names the knob; the command line adds the flag spelling.
    func testErrorsNameTheFlags() throws {
        let cases: [([String], String)] = [
            (["--method", "ig", "--steps", "0"], "--steps '0'"),
            (["--method", "ig", "--rule", "simpson"], "--rule 'simpson'"),
            (["--method", "gradcampp", "--gradcampp-score", "odd"], "--gradcampp-score 'odd'"),
            (["--method", "occlusion", "--window", "100"], "--window '100x100'"),
            (["--method", "gradcam", "--layer", "nope"], "--layer 'nope'"),
            (["--method", "saliency", "--device", "tpu"], "--device 'tpu'"),
            (["--method", "saliency", "--target", "first"], "--target 'first'"),
        ]
        for (flags, expected) in cases {
            let r = try runXAI(["explain", model, tensor, "--out", try temporaryFolder(), "--quiet"] + flags)
            XCTAssertNotEqual(r.status, 0, flags.joined(separator: " "))
            XCTAssertTrue(r.error.contains(expected), "\(flags): \(r.error)")
        }
    }

    /// `xai demo` needs no Demo/ folder: the demo set is in the binary.
    func testDemoRunsFromAnyFolder() throws {
        let cwd = try temporaryFolder()
        let r = try runXAI(["demo", "--method", "cam", "--out", "maps", "--quiet"], directory: cwd)
        XCTAssertEqual(r.status, 0, r.output + r.error)
        XCTAssertTrue(r.output.contains("12 maps written"), r.output)
        XCTAssertTrue(r.output.contains("pointing_game") && r.output.contains("relevance_mass") && r.output.contains("deletion"), r.output)
        let lines = try String(contentsOfFile: cwd + "/maps/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 12 * 4, "one line per image x metric for cam")
        XCTAssertTrue(FileManager.default.fileExists(atPath: cwd + "/maps/index.html"))
    }

    /// The embedded demo files are exactly Demo/ (Tools/embed_demo.py regenerates them).
    func testEmbeddedDemoMatchesTheDemoFolder() throws {
        let demo = URL(fileURLWithPath: fixturesDirectory).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Demo")
        let embedded = Dictionary(uniqueKeysWithValues: EmbeddedDemo.files.map { ($0.path, $0.data) })
        var onDisk: [String: Data] = [:]
        for case let path as String in FileManager.default.enumerator(atPath: demo.path) ?? FileManager.default.enumerator(atPath: "/")!
        where path != "manifest.json" {
            var isDirectory: ObjCBool = false
            let url = demo.appendingPathComponent(path)
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                onDisk[path] = try Data(contentsOf: url)
            }
        }
        XCTAssertEqual(Set(embedded.keys), Set(onDisk.keys), "run python3 Tools/embed_demo.py")
        for (path, data) in onDisk { XCTAssertEqual(embedded[path], data, "\(path) differs; run python3 Tools/embed_demo.py") }
    }
}

private final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var log: [(done: Int, total: Int)] = []
    func append(_ done: Int, _ total: Int) { lock.lock(); log.append((done, total)); lock.unlock() }
    var calls: [(done: Int, total: Int)] { lock.lock(); defer { lock.unlock() }; return log }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
