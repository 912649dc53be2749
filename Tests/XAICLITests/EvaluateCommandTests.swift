import Foundation
import XCTest
import XAI
import XAITestSupport

/// `xai evaluate`: metrics.jsonl, reuse of the maps `xai explain` wrote, masks, and errors named
/// by flag.
final class EvaluateCommandTests: XCTestCase {
    let model = fixturesDirectory + "/models/small_resnet/model.onnx"
    let tensor = fixturesDirectory + "/models/small_resnet/input.npy"


    func records(_ folder: String) throws -> [[String: Any]] {
        try String(contentsOfFile: folder + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testScoresEveryImageMethodAndMetricAndReusesMaps() throws {
        let out = try temporaryFolder()
        let r = try runXAI(["evaluate", model, tensor, "--method", "gradcam,ig", "--steps", "8", "--metrics", "deletion,insertion,sparseness,complexity,completeness",
                            "--out", out, "--quiet"])
        XCTAssertEqual(r.status, 0, r.output + r.error)
        XCTAssertTrue(r.output.contains("deletion (lower)") && r.output.contains("insertion (higher)"), r.output)
        let lines = try records(out)
        XCTAssertEqual(lines.count, 2 * 2 * 5)
        let deletion = try XCTUnwrap(lines.first { $0["metric"] as? String == "deletion" && $0["method"] as? String == "ig" && $0["stem"] as? String == "input_1" })
        XCTAssertEqual((deletion["curve"] as? [Double])?.count, 217, "ceil(4096 / 19) + 1 evaluations")
        XCTAssertEqual(deletion["direction"] as? String, "lower")
        // The score is the library's, on the map written beside it.
        let map = try NPY.read(out + "/input_1/ig.npy")
        let explained = try ExplainedModel(graph: try Models.load(model), backend: CPUBackend())
        let image = try ExplainedModel.image(try NPY.read(tensor), 1)
        let expected = try PixelCurve(mode: .deletion).evaluate(model: explained, images: image, maps: try map.reshaped([1, 64, 64]),
                                                               target: .index(try XCTUnwrap(deletion["target"] as? Int)))
        XCTAssertEqual(try XCTUnwrap(deletion["score"] as? Double), expected.scores[0], accuracy: 1e-6)
        let completeness = try XCTUnwrap(lines.first { $0["metric"] as? String == "completeness" && $0["method"] as? String == "ig" })
        XCTAssertLessThan(try XCTUnwrap(completeness["score"] as? Double), 0.2, "IG with 8 steps is nearly complete")
        // A second run reuses the maps: a map changed on disk changes the scores.
        try NPY.write(Tensor(unchecked: [64, 64], (0..<4096).map { Float($0 % 64) }), to: out + "/input_1/ig.npy")
        let again = try runXAI(["evaluate", model, tensor, "--method", "ig", "--metrics", "sparseness", "--out", out, "--quiet"])
        XCTAssertEqual(again.status, 0, again.error)
        let sparse = try records(out).filter { $0["metric"] as? String == "sparseness" && $0["method"] as? String == "ig" && $0["stem"] as? String == "input_1" }
        XCTAssertEqual(sparse.count, 2)
        XCTAssertNotEqual(sparse[0]["score"] as? Double, sparse[1]["score"] as? Double)
        // The report shows the scores: the table (latest score per image, the best per column
        // marked) and one curve per method for deletion and for insertion.
        let html = try String(contentsOfFile: out + "/index.html", encoding: .utf8)
        XCTAssertTrue(html.contains("<table class=\"scores\">") && html.contains("deletion &darr;") && html.contains("insertion &uarr;"), html)
        XCTAssertEqual(html.components(separatedBy: "<svg class=\"curve\"").count - 1, 2 * 2, "deletion and insertion for gradcam and ig")
        XCTAssertEqual(html.components(separatedBy: "class=\"best\"").count - 1, 5, "one best method per metric")
        XCTAssertTrue(r.output.contains("report:") || again.output.contains("report:"), again.output)
    }

    /// Every metric scores the same maps alike on the CPU and on OpenCL: `xai evaluate --metrics all`
    /// on each device (the maps made there too). Seen: at most 4.1e-5 relative (Grad-CAM's deletion:
    /// its upsampled maps have near-ties that order the pixels), the rest 1.4e-5 or less, but ROAD's.
    /// ROAD removes a share of the pixels: Grad-CAM's upsampled maps hold hundreds of pixels tied on
    /// one backend and 1e-10 apart on the other, so which of them stay at a percentile differs, and
    /// the scores moved by up to 1.8e-4 (road_morf, of 0.09) and 9e-5 (road, of 0.015): they are
    /// held to 5e-4. ARCC doubles ROAD inside a harmonic mean: 4.7e-4 (of 0.085) seen, held to 1e-3.
    /// Faithfulness estimate groups the pixels in the map's order, so the same near-ties move pixels
    /// between groups: 2.2e-3 (of 0.09) seen on Grad-CAM's maps, held to 5e-3 (a correlation); on the
    /// fixture's maps, identical on both backends, the two agree within 3.4e-6. Relative stability
    /// divides by small changes (of the logits, of post-ReLU activations whose zeros weigh 1e6):
    /// 1.6e-4 relative seen (RRS of saliency), under the 1e-3 held. Monotonicity correlation groups
    /// the pixels in |map| order too, and ranks each group's effect: on Grad-CAM's maps 1.8e-2 (a
    /// Spearman correlation of -0.12) seen, held to 5e-2; on identical maps (the fixture's) the
    /// backends and Quantus agree to the last bit. Non-sensitivity counts patches whose probability
    /// change falls below 1e-5: a change within float rounding of it may fall either side on the
    /// two backends, so one patch of the 64 (8-pixel patches of a 64x64 image) may differ.
    func testEveryMetricAgreesOnTheCPUAndOpenCL() throws {
        guard TestBackends.openCL() != nil else { return }
        var scores: [String: [String: Double]] = [:]
        for device in ["cpu", "gpu"] {
            let out = try temporaryFolder()
            // Quantus's stability noise, [0.02, 0.2], moves every copy of input_0 to another class
            // of this small model (the scores NaN): a narrower range keeps them.
            let r = try runXAI(["evaluate", model, tensor, "--method", "saliency,gradcam", "--metrics", "all", "--device", device, "--out", out, "--quiet",
                                "--stability-noise-low=-0.01", "--stability-noise-high", "0.01", "--mprt-samples", "3"])
            XCTAssertEqual(r.status, 0, r.output + r.error)
            for line in try records(out) {
                let key = "\(line["stem"] ?? "") \(line["method"] ?? "") \(line["metric"] ?? "")"
                scores[device, default: [:]][key] = line["score"] as? Double ?? .nan
            }
        }
        let (cpu, gpu) = (scores["cpu"] ?? [:], scores["gpu"] ?? [:])
        XCTAssertEqual(cpu.count, 2 * 2 * 37, "2 images x 2 methods x the 37 metrics that need no ground truth")
        XCTAssertEqual(Set(cpu.keys), Set(gpu.keys))
        for (key, a) in cpu {
            let b = gpu[key] ?? .nan
            XCTAssertTrue(a.isFinite && b.isFinite, "\(key): \(a) on the CPU, \(b) on OpenCL")
            let tolerance = key.hasSuffix(" non_sensitivity") ? 1.0 / 64 + 1e-9 : key.hasSuffix(" monotonicity_correlation") ? 5e-2 : key.hasSuffix(" faithfulness_estimate") ? 5e-3 : key.hasSuffix(" arcc") ? 1e-3 : key.hasSuffix(" road") || key.contains(" road_") ? 5e-4 : 1e-3 * max(abs(a), 1e-3)
            XCTAssertEqual(a, b, accuracy: tolerance, "\(key) on the CPU and OpenCL")
        }
    }

    /// The seed's experiment in one command: LIME re-run under tiny input noise, with its seed fixed.
    func testSensitivityOfLIMEAndGradCAM() throws {
        let out = try temporaryFolder()
        let r = try runXAI(["evaluate", model, tensor, "--method", "gradcam,lime", "--samples", "32", "--segmentation", "grid", "--segments", "4",
                            "--metrics", "sensitivity_max,sensitivity_avg,local_lipschitz", "--sensitivity-samples", "3", "--out", out, "--quiet"])
        XCTAssertEqual(r.status, 0, r.output + r.error)
        let lines = try records(out)
        XCTAssertEqual(lines.count, 2 * 2 * 3)
        for line in lines {
            let score = try XCTUnwrap(line["score"] as? Double)
            XCTAssertTrue(score.isFinite && score >= 0, "\(line)")
            XCTAssertEqual((line["settings"] as? [String: String])?["samples"], "3")
        }
        XCTAssertTrue(r.output.contains("sensitivity_max (lower)"), r.output)
    }

    /// The metrics that re-explain (random logit, MPRT) and those that perturb (faithfulness
    /// correlation, infidelity), with their knobs in the settings.
    func testFaithfulnessAndRandomisationMetrics() throws {
        let out = try temporaryFolder()
        let r = try runXAI(["evaluate", model, tensor, "--method", "gradcam,inputxgrad",
                            "--metrics", "faithfulness_correlation,infidelity,random_logit,random_logit_spearman,mprt,smooth_mprt,efficient_mprt,input_invariance",
                            "--faithfulness-runs", "12", "--faithfulness-subset", "64", "--infidelity-samples", "4", "--mprt-steps", "2",
                            "--mprt-samples", "3", "--mprt-order", "bottom-up", "--mprt-bins", "20", "--out", out, "--quiet"])
        XCTAssertEqual(r.status, 0, r.output + r.error)
        let lines = try records(out)
        XCTAssertEqual(lines.count, 2 * 2 * 8)
        for line in lines {
            let score = try XCTUnwrap(line["score"] as? Double), settings = try XCTUnwrap(line["settings"] as? [String: String])
            XCTAssertTrue(score.isFinite, "\(line)")
            switch line["metric"] as? String {
            case "faithfulness_correlation": XCTAssertEqual(settings["runs"], "12"); XCTAssertTrue(abs(score) <= 1)
            case "infidelity": XCTAssertEqual(settings["samples"], "4"); XCTAssertGreaterThanOrEqual(score, 0)
            case "mprt": XCTAssertEqual((line["curve"] as? [Double])?.count, 2); XCTAssertTrue(abs(score) <= 1); XCTAssertEqual(settings["order"], "bottom-up")
            case "smooth_mprt":
                XCTAssertEqual((line["curve"] as? [Double])?.count, 2); XCTAssertTrue(abs(score) <= 1)
                XCTAssertEqual(settings["order"], "bottom-up"); XCTAssertTrue(settings["smoothing"]?.hasPrefix("3 maps averaged") == true, "\(settings)")
            case "input_invariance":
                // Gradient x Input multiplies by the shifted input; Grad-CAM reads the same activations.
                XCTAssertEqual(score, line["method"] as? String == "inputxgrad" ? 0 : 1, "\(line)")
                XCTAssertEqual(settings["shift"], "-1.0")
            case "efficient_mprt":
                XCTAssertEqual(settings["bins"], "20")
                let curve = try XCTUnwrap(line["curve"] as? [Double])
                XCTAssertEqual(score, (curve[1] - curve[0]) / curve[0], accuracy: 1e-9)
                XCTAssertTrue(curve.allSatisfy { $0 > 0 && $0 <= log(20) + 1e-9 }, "\(curve)")
            case "random_logit", "random_logit_spearman": XCTAssertNotNil(settings["other classes"]); XCTAssertTrue(abs(score) <= 1 + 1e-9)
            default: XCTFail("\(line)")
            }
        }
        XCTAssertTrue(r.output.contains("faithfulness_correlation (higher)") && r.output.contains("mprt (lower)")
                      && r.output.contains("efficient_mprt (higher)"), r.output)
    }

    /// ROAD's three scores from one computation, with their knobs in the settings.
    func testROADMetrics() throws {
        let out = try temporaryFolder()
        let r = try runXAI(["evaluate", model, tensor, "--method", "gradcam", "--metrics", "road,road_morf,road_lerf",
                            "--road-percentiles", "20,80", "--road-score", "logit", "--road-noise", "0.05", "--out", out, "--quiet"])
        XCTAssertEqual(r.status, 0, r.output + r.error)
        let lines = try records(out)
        XCTAssertEqual(lines.count, 2 * 3)
        var scores: [String: [String: Double]] = [:]
        for line in lines {
            let settings = try XCTUnwrap(line["settings"] as? [String: String])
            XCTAssertEqual(settings["percentiles"], "20,80")
            XCTAssertEqual(settings["noise"], "0.05")
            XCTAssertEqual(settings["score"], "logit of the target")
            scores[try XCTUnwrap(line["stem"] as? String), default: [:]][try XCTUnwrap(line["metric"] as? String)] = try XCTUnwrap(line["score"] as? Double)
        }
        for (_, s) in scores {
            let (road, morf, lerf) = (try XCTUnwrap(s["road"]), try XCTUnwrap(s["road_morf"]), try XCTUnwrap(s["road_lerf"]))
            XCTAssertEqual(road, (lerf - morf) / 2, accuracy: 1e-12)
            XCTAssertNotEqual(morf, 0)
        }
        XCTAssertTrue(r.output.contains("road (higher)") && r.output.contains("road_morf (lower)"), r.output)
    }

    func testMasksAndTheirErrors() throws {
        let out = try temporaryFolder(), masks = try temporaryFolder()
        var inside = [Float](repeating: 0, count: 4096)
        for y in 8..<40 { for x in 8..<40 { inside[y * 64 + x] = 1 } }
        try NPY.write(Tensor(unchecked: [64, 64], inside), to: masks + "/input_0.npy")
        try NPY.write(Tensor(unchecked: [64, 63], [Float](repeating: 1, count: 64 * 63)), to: masks + "/input_1.npy")
        let r = try runXAI(["evaluate", model, tensor, "--method", "gradcam", "--metrics", "pointing_game,relevance_mass,relevance_rank",
                            "--ground-truth", masks, "--out", out, "--quiet"])
        XCTAssertEqual(r.status, 1, "input_1's mask has the wrong size")
        XCTAssertTrue(r.error.contains("input_1.npy") && r.error.contains("mask"), r.error)
        let lines = try records(out)
        XCTAssertEqual(lines.map { $0["metric"] as? String }, ["pointing_game", "relevance_mass", "relevance_rank"])
        XCTAssertEqual(lines[0]["stem"] as? String, "input_0")
        let cases: [([String], String)] = [
            (["--metrics", "fidelity"], "--metrics 'fidelity'"),
            (["--metrics", "pointing_game"], "--ground-truth"),
            (["--metrics", "deletion", "--step", "0"], "--step '0'"),
            (["--metrics", "deletion", "--substrate", "noise"], "--substrate 'noise'"),
            (["--metrics", "pointing_game", "--ground-truth", "/nonexistent"], "/nonexistent"),
            (["--metrics", "sensitivity_max", "--sensitivity-radius=-1"], "--sensitivity-radius '-1.0'"),
            (["--metrics", "sensitivity_max", "--sensitivity-samples", "0"], "--sensitivity-samples '0'"),
            (["--metrics", "faithfulness_correlation", "--faithfulness-subset", "5000"], "--faithfulness-subset '5000'"),
            (["--metrics", "faithfulness_correlation", "--faithfulness-runs", "1"], "--faithfulness-runs '1'"),
            (["--metrics", "infidelity", "--infidelity-sigma", "0"], "--infidelity-sigma '0.0'"),
            (["--metrics", "mprt", "--mprt-steps", "0"], "--mprt-steps '0'"),
            (["--metrics", "mprt", "--mprt-order", "sideways"], "--mprt-order 'sideways'"),
            (["--metrics", "smooth_mprt", "--mprt-samples", "0"], "--mprt-samples '0'"),
            (["--metrics", "smooth_mprt", "--mprt-noise=-0.5"], "--mprt-noise '-0.5'"),
            (["--metrics", "efficient_mprt", "--mprt-bins", "1"], "--mprt-bins '1'"),
            (["--metrics", "input_invariance", "--invariance-shift", "0"], "--invariance-shift '0.0'"),
            (["--metrics", "road", "--road-percentiles", "0,50"], "--road-percentiles '0,50'"),
            (["--metrics", "road_lerf", "--road-percentiles", "ten"], "--road-percentiles 'ten'"),
            (["--metrics", "road", "--road-score", "rank"], "--road-score 'rank'"),
            (["--metrics", "road_morf", "--road-noise=-0.5"], "--road-noise '-0.5'"),
        ]
        for (flags, expected) in cases {
            let e = try runXAI(["evaluate", model, tensor, "--out", try temporaryFolder(), "--quiet"] + flags)
            XCTAssertNotEqual(e.status, 0, flags.joined(separator: " "))
            XCTAssertTrue(e.error.contains(expected), "\(flags): \(e.error)")
        }
    }
}
