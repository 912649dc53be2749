import Foundation
import XCTest
import XAI
import XAITestSupport

/// The facade every frontend shares: a model opened once (`Session`), knobs declared once, the
/// metric registry, and file-system errors in plain words.
final class FacadeTests: XCTestCase {
    let model = fixturesDirectory + "/models/small_resnet/model.onnx"
    let tensor = fixturesDirectory + "/models/small_resnet/input.npy"


    func parameter(_ body: () throws -> Any) -> String? {
        do { _ = try body() } catch XAIError.invalidArgument(let p, _, _) { return p } catch { return "\(error)" }
        return nil
    }

    // MARK: Knobs

    /// A knob takes values of its own type only, from JSON (where true is a number to
    /// Foundation) and from Swift alike; every configuration survives the trip through its values.
    func testKnobsTakeTheirOwnTypeFromJSONAndSwift() throws {
        for json in [#"{"controlVariate": 1}"#, #"{"steps": true}"#, #"{"steps": 2.5}"#, #"{"rule": 3}"#, #"{"noise": "a lot"}"#, #"{"seed": -1}"#] {
            XCTAssertNotNil(parameter { try MethodConfiguration.parse(json: Data(json.utf8)) }, json)
        }
        let c = try MethodConfiguration.parse(json: Data(#"{"steps": 3.0, "controlVariate": false, "samples": null, "untilStable": 0.9, "noise": 1}"#.utf8))
        XCTAssertEqual(c.steps, 3)
        XCTAssertFalse(c.controlVariate)
        XCTAssertNil(c.samples)
        XCTAssertEqual(c.untilStable, 0.9)
        XCTAssertEqual(c.noise, 1)
        var random = MethodConfiguration()
        var generator = SeededGenerator(seed: 11)
        random.steps = Int.random(in: 1...500, using: &generator)
        random.samples = Int.random(in: 1...500, using: &generator)
        random.noise = Float.random(in: 0...1, using: &generator)
        random.untilStable = Double.random(in: 0...1, using: &generator)
        random.layer = "layer\(Int.random(in: 0...9, using: &generator))"
        random.incremental = false
        random.seed = UInt64.random(in: 0...1_000_000, using: &generator)
        XCTAssertEqual(try MethodConfiguration.parse(random.values), random)
        try random.set("samples", nil)
        XCTAssertNil(random.samples, "nil unsets an optional knob")
        try random.set("steps", 9)
        XCTAssertEqual(random.steps, 9)
        XCTAssertEqual(parameter { try random.set("steps", "nine") }, "steps")
        XCTAssertEqual(parameter { try random.set("stepz", 9) }, "stepz")
    }

    /// A knob's range is the method's: SmoothGrad takes fewer samples than KernelSHAP, LIME needs
    /// a few; the registry refuses what the method would, and lists each method's own range.
    func testEachMethodChecksItsOwnRangeOfAKnob() throws {
        let session = try Session(model)
        for (method, samples, refused) in [("smoothgrad", SmoothGrad.sampleRange.upperBound + 1, true), ("kernelshap", SmoothGrad.sampleRange.upperBound + 1, false),
                                           ("lime", LIME.sampleRange.lowerBound - 1, true), ("kernelshap", LIME.sampleRange.lowerBound - 1, false)] {
            var c = MethodConfiguration()
            c.samples = samples
            XCTAssertEqual(parameter { try session.method(method, configuration: c) }, refused ? "samples" : nil, "\(method) \(samples)")
        }
        let listed = try XCTUnwrap(try JSONSerialization.jsonObject(with: MethodRegistry.json()) as? [String: Any])
        let methods = try XCTUnwrap(listed["methods"] as? [[String: Any]])
        func maximum(_ method: String) -> Double? {
            let knobs = methods.first { $0["name"] as? String == method }?["knobs"] as? [[String: Any]]
            return knobs?.first { $0["name"] as? String == "samples" }?["maximum"] as? Double
        }
        XCTAssertEqual(maximum("smoothgrad"), Double(SmoothGrad.sampleRange.upperBound))
        XCTAssertEqual(maximum("kernelshap"), Double(KernelSHAP.sampleRange.upperBound))
    }

    /// What a result records: every knob the method read at the value it ran with (its own default
    /// where unset), tensors given directly named as such.
    func testRecordedParametersAreTheKnobsTheMethodRead() throws {
        let session = try Session(model)
        XCTAssertEqual(try session.method("smoothgrad").parameters, ["samples": "50", "noise": "0.15", "absolute": "false", "seed": "0"])
        let mask = try temporaryFolder() + "/mask.npy"
        try NPY.write(Tensor(unchecked: [64, 64], (0..<4096).map { Float($0 / 1024) }), to: mask)
        var c = MethodConfiguration()
        c.featureMask = mask
        c.batch = 4
        let lime = try session.method("lime", configuration: c).parameters
        XCTAssertEqual(lime["featureMask"], mask)
        XCTAssertNil(lime["segmentation"], "a feature mask replaces the segmentation")
        XCTAssertNil(lime["batch"], "results do not depend on the batch")
        let given = try session.method("ig", baseline: .tensor(Tensor(shape: [3, 64, 64])))
        XCTAssertEqual(given.parameters["baseline"], "tensor")
        // The tensors are what the method runs with: the image as its own baseline leaves nothing
        // to attribute; a label map of quadrants gives four segments.
        let image = try ExplainedModel.image(try NPY.read(tensor), 0)
        let itself = try session.method("ig", baseline: .tensor(try image.reshaped([3, 64, 64])))
        let nothing = try itself.method.attribute(image, target: .predicted, baseline: itself.baseline).map
        XCTAssertTrue(nothing.scalars.allSatisfy { $0 == 0 })
        let ids: [Float] = (0..<4096).map { (p: Int) -> Float in Float(2 * (p / 64 / 32) + p % 64 / 32) }
        let quadrants = Tensor(unchecked: [64, 64], ids)
        let shap = try session.method("kernelshap", configuration: try MethodConfiguration.parse(json: Data(#"{"samples": 16}"#.utf8)),
                                      segmentation: .labels(quadrants))
        let segments = try XCTUnwrap(try shap.method.attribute(image, target: .predicted, baseline: shap.baseline).segments)
        XCTAssertEqual(Set(segments.scalars).count, 4)
        XCTAssertEqual(shap.parameters["segmentation"], "labels")
        XCTAssertNil(shap.parameters["segments"])
        XCTAssertEqual(try session.method("gradcam").parameters["layer"], try session.model.camLayer(nil))
    }

    /// Every knob is a flag of the commands that take it, named like it.
    func testEveryKnobIsAFlag() throws {
        let explain = try runXAI(["explain", "--help"]).output, evaluate = try runXAI(["evaluate", "--help"]).output
        func flag(_ name: String) -> String { "--" + name.map { $0.isUppercase ? "-" + $0.lowercased() : String($0) }.joined() }
        for knob in MethodConfiguration.knobNames {
            let f = flag(knob)
            XCTAssertTrue(explain.contains(f + " ") || explain.contains(f + "\n") || explain.contains(f + "/"), "xai explain lacks \(f)")
        }
        for knob in MetricConfiguration.knobNames { XCTAssertTrue(evaluate.contains(flag(knob)), "xai evaluate lacks \(flag(knob))") }
    }

    // MARK: Sessions

    func testASessionKnowsItsInputClassesAndRefusesModelsWithoutAnImageInput() throws {
        let session = try Session(model)
        XCTAssertEqual([session.height, session.width, session.classes], [64, 64, 10])
        XCTAssertEqual(session.info["inputShape"] as? [Int], [1, 3, 64, 64])
        XCTAssertEqual(try session.prepare(tensor).first?.tensor.shape.dims.suffix(3), [3, 64, 64])
        // A graph whose input is not an image.
        let graph = Graph(name: "vector", inputs: [ValueInfo(name: "x", shape: [nil, 8])], outputs: [ValueInfo(name: "y", shape: [nil, 4])],
                          initializers: ["w": Tensor.uniform([8, 4], in: -1...1, seed: 2)],
                          nodes: [Node(name: "mm", op: .matMul, inputs: ["x", "w"], outputs: ["y"])])
        XCTAssertThrowsError(try Session(source: "vector", model: try ExplainedModel(graph: graph, backend: CPUBackend()))) { error in
            guard case XAIError.unsupported("vector", _) = error else { return XCTFail("\(error)") }
        }
    }

    // MARK: Metrics

    /// Every metric runs through the registry on a real model, in the direction the registry
    /// declares, each score as the metric's own code gives it, and the metrics that share their
    /// work (the sensitivity scores, random logit's two) computed once.
    func testEveryMetricRunsThroughTheRegistryAsItsOwnCodeScoresIt() throws {
        let session = try Session(model)
        let images = try ExplainedModel.image(try NPY.read(tensor), 0)
        var c = MethodConfiguration()
        c.steps = 4
        let ig = try session.method("ig", configuration: c)
        // A class other than the top one, so a metric that re-explains the wrong class shows.
        let other = (try session.model.prepare(images, target: .predicted).targets[0] + 3) % session.classes
        let a = try ig.method.attribute(images, target: .index(other), baseline: ig.baseline)
        var generator = SeededGenerator(seed: 5)
        let masks = Tensor(unchecked: [1, 64, 64], (0..<4096).map { _ in Float(generator.next() % 4 == 0 ? 1 : 0) })
        var knobs = MetricConfiguration()
        knobs.sensitivitySamples = 2
        knobs.stabilitySamples = 3
        knobs.monotonicitySamples = 2
        // Quantus's [0.02, 0.2] moves every copy of this image to another class (the scores NaN).
        (knobs.stabilityNoiseLow, knobs.stabilityNoiseHigh) = (-0.01, 0.01)
        knobs.faithfulnessRuns = 4
        knobs.faithfulnessSubset = 64
        knobs.infidelitySamples = 3
        knobs.mprtSteps = 2
        knobs.step = 512
        knobs.seed = 3
        knobs.continuitySteps = 3
        (knobs.nonSensitivityPatch, knobs.nonSensitivityEpsilon) = (16, 1e-3)
        knobs.substrate = "black"
        let input = MetricInput(session: session, images: images, maps: a.map, targets: a.targets, masks: masks, method: "ig", methodConfiguration: c)
        var groups: [String] = []
        let outcomes = try MetricRegistry.evaluate(MetricRegistry.names, input: input, configuration: knobs) { groups.append($0) }
        XCTAssertEqual(outcomes.map(\.name), MetricRegistry.names)
        XCTAssertEqual(groups.filter { $0 == "sensitivity" }.count, 1, "the sensitivity scores share their re-explanations")
        XCTAssertEqual(groups.filter { $0 == "random_logit" }.count, 1)
        XCTAssertEqual(groups.filter { $0 == "relative_stability" }.count, 1, "RIS, ROS and RRS share their copies")
        for (name, outcome) in outcomes {
            XCTAssertEqual(outcome.result.direction, try MetricRegistry.spec(name).direction, name)
            XCTAssertEqual(outcome.result.metric, name)
            XCTAssertEqual(outcome.result.scores.count, 1, name)
        }
        func score(_ name: String) -> Double? { outcomes.first { $0.name == name }?.outcome.result.scores[0] }
        let target = Target.index(a.targets[0])
        XCTAssertEqual(score("deletion"), try PixelCurve(mode: .deletion, step: 512, substrate: .black).evaluate(model: session.model, images: images, maps: a.map, target: target).scores[0])
        XCTAssertEqual(score("faithfulness_correlation"),
                       try FaithfulnessCorrelation(runs: 4, subsetSize: 64, seed: 3).evaluate(model: session.model, images: images, maps: a.map, target: target).scores[0])
        XCTAssertEqual(score("region_perturbation"),
                       try RegionPerturbation(substrate: .black).evaluate(model: session.model, images: images, maps: a.map, target: target).scores[0])
        XCTAssertEqual(score("faithfulness_estimate"),
                       try FaithfulnessEstimate(step: 512, substrate: .black).evaluate(model: session.model, images: images, maps: a.map, target: target).scores[0])
        XCTAssertEqual(score("monotonicity_correlation"),
                       try MonotonicityCorrelation(step: 512, samples: 2, seed: 3).evaluate(model: session.model, images: images, maps: a.map, target: target).scores[0])
        // IROF's superpixels are the method's: SLIC with the `segments` knob, as LIME's.
        XCTAssertEqual(score("irof"), try IROF(segmentation: .slic(SLIC(segments: c.segments)), substrate: .black).evaluate(model: session.model, images: images, maps: a.map, target: target).scores[0])
        XCTAssertEqual(score("relevance_mass"), try Localisation.relevanceMass(images: images, maps: a.map, masks: masks).scores[0])
        XCTAssertEqual(score("attribution_localisation"), try Localisation.attributionLocalisation(images: images, maps: a.map, masks: masks).scores[0])
        XCTAssertEqual(score("non_sensitivity"),
                       try NonSensitivity(patchSize: 16, epsilon: 1e-3, substrate: .black).evaluate(model: session.model, images: images, maps: a.map, target: target).scores[0])
        XCTAssertEqual(score("continuity"), try Continuity(steps: 3).evaluate(images: images) { x, _ in
            try ig.method.attribute(x, target: target, baseline: ig.baseline).map
        }.scores[0])
        let sensitivity = try Sensitivity(samples: 2, seed: 3).evaluate(images: images) { x in
            try ig.method.attribute(x, target: target, baseline: ig.baseline).map
        }
        XCTAssertEqual(score("sensitivity_max"), sensitivity.max.scores[0])
        XCTAssertEqual(score("local_lipschitz"), sensitivity.lipschitz.scores[0])
        let stability = try RelativeStability(samples: 3, noise: -0.01...0.01, seed: 3).evaluate(model: session.model, images: images) { x, _ in
            try ig.method.attribute(x, target: target, baseline: ig.baseline).map
        }
        XCTAssertTrue(stability.input.scores[0].isFinite && stability.changedCopies == [0])
        XCTAssertEqual(score("relative_input_stability"), stability.input.scores[0])
        XCTAssertEqual(score("relative_output_stability"), stability.output.scores[0])
        XCTAssertEqual(score("relative_representation_stability"), stability.representation.scores[0])
        var badLayer = knobs
        badLayer.stabilityLayer = "no_such_activation"
        XCTAssertEqual(parameter { try MetricRegistry.evaluate(["relative_input_stability"], input: input, configuration: badLayer) }, "stabilityLayer")
        // Metrics that re-explain need the method; mask metrics need masks.
        let anonymous = MetricInput(session: session, images: images, maps: a.map, targets: a.targets)
        XCTAssertEqual(parameter { try MetricRegistry.evaluate(["sensitivity_max"], input: anonymous, configuration: knobs) }, "method")
        XCTAssertEqual(parameter { try MetricRegistry.evaluate(["pointing_game"], input: anonymous, configuration: knobs) }, "masks")
        XCTAssertNoThrow(try MetricRegistry.evaluate(["sparseness", "deletion"], input: anonymous, configuration: knobs))
    }

    /// A metric's bad knob is named as the knob (the flag on the command line), also where the
    /// check is the metric's own (a subset as large as the image).
    func testMetricKnobErrorsNameTheKnob() throws {
        let pixels = 64 * 64
        for (json, metric, knob) in [(#"{"faithfulnessSubset": 4096}"#, "faithfulness_correlation", "faithfulnessSubset"),
                                     (#"{"sensitivitySamples": 0}"#, "sensitivity_max", "sensitivitySamples"),
                                     (#"{"stabilitySamples": 0}"#, "relative_output_stability", "stabilitySamples"),
                                     (#"{"monotonicitySamples": 0}"#, "monotonicity_correlation", "monotonicitySamples"),
                                     (#"{"stabilityNoiseLow": 0.5}"#, "relative_input_stability", "stabilityNoiseHigh"),
                                     (#"{"mprtSteps": 0}"#, "mprt", "mprtSteps"), (#"{"substrate": "grey"}"#, "deletion", "substrate"),
                                     (#"{"mprtSamples": 0}"#, "smooth_mprt", "mprtSamples"), (#"{"mprtNoise": -0.5}"#, "smooth_mprt", "mprtNoise"),
                                     (#"{"mprtOrder": "sideways"}"#, "smooth_mprt", "mprtOrder"), (#"{"mprtBins": 1}"#, "efficient_mprt", "mprtBins"),
                                     (#"{"invarianceShift": 0}"#, "input_invariance", "invarianceShift"),
                                     (#"{"invarianceTolerance": -1}"#, "input_invariance", "invarianceTolerance"),
                                     (#"{"step": 5000}"#, "insertion", "step"), (#"{"infidelitySigma": 0}"#, "infidelity", "infidelitySigma"),
                                     (#"{"nonSensitivityPatch": 65}"#, "non_sensitivity", "nonSensitivityPatch"),
                                     (#"{"patchSize": 65}"#, "selectivity", "patchSize"),
                                     (#"{"continuitySteps": 0}"#, "continuity", "continuitySteps")] {
            let c = try MetricConfiguration.parse(json: Data(json.utf8))
            XCTAssertEqual(parameter { try MetricRegistry.validate([metric], configuration: c, pixels: pixels) }, knob, json)
        }
        XCTAssertEqual(try MetricRegistry.expand("all", masks: false), MetricRegistry.metrics.filter { !$0.needsMasks }.map(\.name))
        XCTAssertEqual(try MetricRegistry.expand("all", masks: true), MetricRegistry.names)
        XCTAssertEqual(parameter { try MetricRegistry.expand("pointing_game", masks: false) }, "groundTruth")
        XCTAssertEqual(parameter { try MetricRegistry.expand("accuracy", masks: false) }, "metrics")
        // 4096 pixels in groups of 512: 8 groups, each filled 3 times, and the clean image.
        XCTAssertEqual(try MetricRegistry.spec("monotonicity_correlation").cost(pixels: pixels, configuration: try MetricConfiguration.parse(json: Data(#"{"step": 512, "monotonicitySamples": 3}"#.utf8))),
                       MethodCost(evaluations: 25, forwardEquivalents: 25))
        // The image and 4 copies, each explained (IG with 8 steps: 8 evaluations, 16 forward-equivalents) and run forward once.
        XCTAssertEqual(try MetricRegistry.spec("relative_representation_stability").cost(pixels: pixels, configuration: try MetricConfiguration.parse(json: Data(#"{"stabilitySamples": 4}"#.utf8)),
                                                                                        method: MethodCost(evaluations: 8, forwardEquivalents: 16)),
                       MethodCost(evaluations: 45, forwardEquivalents: 85))
        // Smooth MPRT: the original model and 2 stages, 3 maps each; efficient MPRT: one map.
        let mprt = try MetricConfiguration.parse(json: Data(#"{"mprtSteps": 2, "mprtSamples": 3}"#.utf8))
        XCTAssertEqual(try MetricRegistry.spec("smooth_mprt").cost(pixels: pixels, configuration: mprt, method: MethodCost(evaluations: 8, forwardEquivalents: 16)),
                       MethodCost(evaluations: 72, forwardEquivalents: 144))
        // Input invariance: the map on the shifted model and its forward.
        XCTAssertEqual(try MetricRegistry.spec("input_invariance").cost(pixels: pixels, method: MethodCost(evaluations: 8, forwardEquivalents: 16)),
                       MethodCost(evaluations: 9, forwardEquivalents: 17))
        XCTAssertEqual(try MetricRegistry.spec("efficient_mprt").cost(pixels: pixels, configuration: mprt, method: MethodCost(evaluations: 8, forwardEquivalents: 16)),
                       MethodCost(evaluations: 8, forwardEquivalents: 16))
        // 4096 pixels in steps of 500: 9 steps (the last one partial) and the clean image.
        XCTAssertEqual(try MetricRegistry.spec("deletion").cost(pixels: pixels, configuration: try MetricConfiguration.parse(json: Data(#"{"step": 500}"#.utf8))),
                       MethodCost(evaluations: 10, forwardEquivalents: 10))
    }

    // MARK: File-system errors

    /// A folder nobody may write to (as root, /sys; else a folder without write permission) and a
    /// full disk (/dev/full) give the path, the operation and the system's reason in plain words.
    func testFileErrorsSayThePathTheOperationAndWhy() throws {
        let locked: String
        if geteuid() == 0 {
            locked = "/sys"
        } else {
            locked = try temporaryFolder()
            chmod(locked, 0o555)
            addTeardownBlock { chmod(locked, 0o755) }
        }
        let npy = locked + "/map.npy"
        XCTAssertThrowsError(try NPY.write(Tensor(shape: [2]), to: npy)) { error in
            XCTAssertEqual("\(error)", "\(npy): cannot create: permission denied")
        }
        XCTAssertThrowsError(try FileSystem.createDirectory(locked + "/out/img")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("\(locked)/out: cannot create folder: "), text)
            XCTAssertTrue(text.hasSuffix("permission denied") || text.hasSuffix("operation not permitted"), text)
        }
        let png = locked + "/overlay.png"
        XCTAssertThrowsError(try RGBImage(width: 2, height: 2, pixels: [UInt8](repeating: 9, count: 12)).writePNG(png)) { error in
            XCTAssertEqual("\(error)", "\(png): cannot create: permission denied")
        }
        let full = try OutputFile(appendingTo: "/dev/full")
        XCTAssertThrowsError(try full.write(Data("{}\n".utf8))) { error in
            XCTAssertEqual("\(error)", "/dev/full: cannot write: no space left on device")
        }
        let folder = try temporaryFolder()
        _ = FileManager.default.createFile(atPath: folder + "/taken", contents: Data())
        XCTAssertThrowsError(try FileSystem.createDirectory(folder + "/taken/img")) { error in
            XCTAssertEqual("\(error)", "\(folder)/taken: cannot create folder: a file of that name is in the way")
        }
    }

    /// The command line reports the same words: an output folder it may not create, and a results
    /// file on a full disk (the run goes on and says which writes failed).
    func testTheCommandLineReportsFileErrorsInPlainWords() throws {
        let locked = geteuid() == 0 ? "/sys/xai-out" : "/proc/xai-out"
        let refused = try runXAI(["explain", model, tensor, "--method", "saliency", "--out", locked, "--quiet"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.error.contains("\(locked): cannot create folder:"), refused.error)
        XCTAssertFalse(refused.error.contains("NSCocoaErrorDomain"), refused.error)
        let out = try temporaryFolder()
        try FileManager.default.createSymbolicLink(atPath: out + "/results.jsonl", withDestinationPath: "/dev/full")
        let full = try runXAI(["explain", model, tensor, "--method", "saliency", "--out", out, "--save", "raw", "--quiet"])
        XCTAssertNotEqual(full.status, 0)
        XCTAssertTrue(full.error.contains("results.jsonl: cannot write: no space left on device"), full.error)
        XCTAssertFalse(full.error.contains("NSCocoaErrorDomain"), full.error)
    }
}
