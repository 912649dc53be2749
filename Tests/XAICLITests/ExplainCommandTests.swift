import Foundation
import XCTest
import XAI
import XAITestSupport

/// `xai explain` / `predict` / `methods` end to end on a fixture model, and the image codecs and
/// resizing against Pillow (Tools/make_image_fixtures.py).
final class ExplainCommandTests: XCTestCase {
    let model = fixturesDirectory + "/models/small_resnet/model.onnx"
    let tensor = fixturesDirectory + "/models/small_resnet/input.npy"


    func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(whereSeparator: \.isNewline).map(String.init)
    }

    func testExplainWritesMapsEqualToTheLibraryAndResumes() throws {
        let out = try temporaryFolder()
        let args = ["explain", model, tensor, "--method", "gradcam,occlusion,lime", "--samples", "40", "--segmentation", "grid", "--segments", "4",
                    "--preset", "none", "--out", out, "--quiet"]
        let first = try runXAI(args)
        XCTAssertEqual(first.status, 0, first.output + first.error)
        XCTAssertTrue(first.output.contains("6 maps written, 0 already there, 0 failed"), first.output)
        // The library on the same input.
        let input = try NPY.read(tensor)
        let explained = try ExplainedModel(graph: try Models.load(model), backend: CPUBackend())
        let gradcam = try GradientCAM(model: explained).attribute(input)
        let occlusion = try Occlusion(model: explained).attribute(input)
        for b in 0..<2 {
            let folder = out + "/input_\(b)"
            for (name, expected) in [("gradcam", gradcam.map), ("occlusion", occlusion.map)] {
                let map = try NPY.read(folder + "/\(name).npy")
                XCTAssertEqual(map.shape, [64, 64])
                let reference = Array(expected.scalars[(b * 4096)..<((b + 1) * 4096)]).map(Double.init)
                XCTAssertLessThan(relativeL2(doubles(map), reference), 1e-5, "\(name) image \(b)")
                XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/\(name).png"))
            }
            XCTAssertEqual(try NPY.read(folder + "/lime.raw.npy").shape, [16])
            XCTAssertEqual(try NPY.read(folder + "/segments.npy").shape, [64, 64])
            let overlay = try RGBImage.read(folder + "/gradcam.png")
            XCTAssertEqual([overlay.width, overlay.height], [64, 64])
        }
        let records = lines(out + "/results.jsonl")
        XCTAssertEqual(records.count, 6)
        let record = try JSONSerialization.jsonObject(with: Data(records[0].utf8)) as! [String: Any]
        for key in ["image", "model", "target", "score", "method", "parameters", "seed", "seconds", "device"] {
            XCTAssertNotNil(record[key], key)
        }
        // The report links only files that exist.
        let html = try String(contentsOfFile: out + "/index.html", encoding: .utf8)
        let links = html.components(separatedBy: "src=\"").dropFirst().map { $0.prefix { $0 != "\"" } }
        XCTAssertEqual(links.count, 2 * 4)  // input + 3 overlays per image
        for link in links { XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + link), String(link)) }
        // A second run writes nothing twice.
        let second = try runXAI(args)
        XCTAssertEqual(second.status, 0, second.output + second.error)
        XCTAssertTrue(second.output.contains("0 maps written, 6 already there"), second.output)
        XCTAssertEqual(lines(out + "/results.jsonl").count, 6)
    }

    /// Several images per pass (the gradient and CAM methods) and files decoded ahead give the
    /// maps and records one image at a time gives, with a group that does not fill the batch and
    /// a method that runs per image beside them.
    func testImageBatchesGiveTheMapsOfOneImageAtATime() throws {
        let folder = try temporaryFolder()
        var rng = SeededGenerator(seed: 11)
        var names: [String] = []
        for i in 0..<7 {
            let pixels = (0..<(40 * 36 * 3)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            names.append(folder + "/picture\(i).png")
            try RGBImage(width: 40, height: 36, pixels: pixels).writePNG(names[i])
        }
        var maps: [[String: [Double]]] = []
        var records: [Set<String>] = []
        for batch in ["1", "3"] {
            let out = folder + "/out\(batch)"
            let r = try runXAI(["explain", model] + names + ["--method", "saliency,gradcam,occlusion", "--image-batch", batch, "--out", out, "--quiet"])
            XCTAssertEqual(r.status, 0, r.output + r.error)
            XCTAssertTrue(r.output.contains("21 maps written, 0 already there, 0 failed"), r.output)
            var found: [String: [Double]] = [:]
            for i in 0..<7 {
                for method in ["saliency", "gradcam", "occlusion"] {
                    found["picture\(i)/\(method)"] = doubles(try NPY.read(out + "/picture\(i)/\(method).npy"))
                    XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/picture\(i)/\(method).png"))
                }
            }
            maps.append(found)
            records.append(Set(try lines(out + "/results.jsonl").map { line in
                let record = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                return "\(record["stem"]!) \(record["method"]!) \(record["target"]!)"
            }))
        }
        XCTAssertEqual(records[0].count, 21)
        XCTAssertEqual(records[0], records[1], "the same images, methods and targets")
        for (key, one) in maps[0] {
            XCTAssertLessThan(relativeL2(try XCTUnwrap(maps[1][key]), one), 1e-5, key)
        }
        let bad = try runXAI(["explain", model, names[0], "--image-batch", "0", "--out", folder + "/bad"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.error.contains("image-batch"), bad.error)
    }

    func testCorruptImageIsNamedAndTheRunGoesOn() throws {
        let out = try temporaryFolder()
        let bad = out + "/broken.png"
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3, 4, 5]).write(to: URL(fileURLWithPath: bad))
        let good = fixturesDirectory + "/images/rgb8.png"
        let r = try runXAI(["explain", model, bad, good, "--method", "gradcam", "--out", out + "/maps", "--quiet"])
        XCTAssertEqual(r.status, 1, r.output + r.error)
        XCTAssertTrue(r.error.contains("broken.png"), r.error)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/maps/rgb8/gradcam.npy"), "the good image was still explained")
        XCTAssertTrue(r.output.contains("1 maps written, 0 already there, 1 failed"), r.output)
    }

    /// A map that explains nothing (every pixel one value) is written, and said: a warning on
    /// standard error with what to try, a count in the summary line and `constantMap` in its
    /// record. SLIC on this preprocessed tensor (values in [-1, 1], not colours) finds one segment,
    /// so LIME's map is constant; on a grid it is not, and neither is Grad-CAM's.
    func testConstantMapsAreWrittenAndWarnedAbout() throws {
        let out = try temporaryFolder()
        let r = try runXAI(["explain", model, tensor, "--method", "lime,gradcam", "--samples", "32", "--save", "raw", "--out", out, "--quiet"])
        XCTAssertEqual(r.status, 0, r.output + r.error)
        XCTAssertEqual(r.error.components(separatedBy: "warning: ").count - 1, 2, r.error)
        XCTAssertTrue(r.error.contains("input_0/lime.npy (\(tensor)): the map is constant") && r.error.contains("one segment") && r.error.contains("--segmentation grid"), r.error)
        XCTAssertFalse(r.error.contains("gradcam"), r.error)
        XCTAssertTrue(r.output.contains("4 maps written, 0 already there, 0 failed, "), r.output)
        XCTAssertTrue(r.output.contains(", 2 constant (warnings above)"), r.output)
        let records = try String(contentsOfFile: out + "/results.jsonl", encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        for record in records {
            let flagged = (record["diagnostics"] as? [String: Any])?["constantMap"] as? Double
            XCTAssertEqual(flagged, record["method"] as? String == "lime" ? 1 : nil, "\(record)")
        }
        let grid = try runXAI(["explain", model, tensor, "--method", "lime", "--samples", "32", "--segmentation", "grid", "--segments", "4", "--save", "raw",
                               "--out", try temporaryFolder(), "--quiet"])
        XCTAssertEqual(grid.status, 0, grid.error)
        XCTAssertFalse(grid.error.contains("warning"), grid.error)
        XCTAssertFalse(grid.output.contains("constant"), grid.output)
        // Meaningful Perturbation on an image the demo model is sure of (probability 1 in float32):
        // nothing is deleted, and the warning says why; on one it is less sure of, a map.
        let demo = fixturesDirectory + "/../../Demo"
        let mp = try runXAI(["explain", demo + "/model.onnx", demo + "/samples/square_1.png", demo + "/samples/circle_1.png", "--method", "mp",
                             "--iterations", "20", "--save", "raw", "--out", try temporaryFolder(), "--quiet"])
        XCTAssertEqual(mp.status, 0, mp.error)
        XCTAssertEqual(mp.error.components(separatedBy: "warning: ").count - 1, 1, mp.error)
        XCTAssertTrue(mp.error.contains("square_1/mp.npy") && mp.error.contains("starts saturated (1.000000)") && mp.error.contains("--score logit"), mp.error)
        // What the warning suggests: on the logit the same image's mask deletes something, and
        // the record says which score ran (the method's default where the flag is not given).
        let logitOut = try temporaryFolder()
        let logit = try runXAI(["explain", demo + "/model.onnx", demo + "/samples/square_1.png", "--method", "mp,rise", "--masks", "64",
                                "--iterations", "20", "--score", "logit", "--save", "raw", "--out", logitOut, "--quiet"])
        XCTAssertEqual(logit.status, 0, logit.error)
        XCTAssertFalse(logit.error.contains("warning"), logit.error)
        let map = try NPY.read(logitOut + "/square_1/mp.npy")
        XCTAssertGreaterThan(Set(map.scalars).count, 1, "the mask on the logit deletes part of the image")
        let ran = try String(contentsOfFile: logitOut + "/results.jsonl", encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }.map { (($0["parameters"] as? [String: Any])?["score"] as? String) }
        XCTAssertEqual(ran, ["logit", "logit"])
        let bad = try runXAI(["explain", demo + "/model.onnx", demo + "/samples/square_1.png", "--method", "rise", "--score", "odds",
                              "--out", try temporaryFolder(), "--quiet"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.error.contains("score") && bad.error.contains("odds"), bad.error)
    }

    func testBadFlagsAreNamed() throws {
        let unknown = try runXAI(["explain", model, tensor, "--method", "nonsense", "--out", try temporaryFolder()])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.error.contains("--method"), unknown.error)
        let shard = try runXAI(["explain", model, tensor, "--shard", "3/2", "--out", try temporaryFolder()])
        XCTAssertNotEqual(shard.status, 0)
        XCTAssertTrue(shard.error.contains("--shard"), shard.error)
        let missing = try runXAI(["explain", model, "/no/such/image.png", "--out", try temporaryFolder()])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.error.contains("/no/such/image.png"), missing.error)
    }

    /// `xai inspect`: the shapes, the op histogram of the file as exported (6 Conv, 5 Relu, ...),
    /// the default CAM layer; for the zoo's ResNet-18, torchvision's 11,689,512 parameters plus
    /// its 9,600 batch-norm statistics (11.70 M) and its 1.81 GMACs (3.628 GFLOP).
    func testInspectDescribesTheModel() throws {
        let r = try runXAI(["inspect", model])
        XCTAssertEqual(r.status, 0, r.output + r.error)
        for line in ["input     input [Nx3x64x64]", "output    logits [Nx10]", "params    0.01 M",
                     "ops       Add 2, Conv 6, Flatten 1, Gemm 1, GlobalAveragePool 1, MaxPool 1, Relu 5",
                     "nodes     17 as loaded, 10 after folding", "unsupported ops: none", "* /layer2/relu2/Relu_output_0  [Nx16x8x8]  [N, C, h, w]"] {
            XCTAssertTrue(r.output.contains(line), "missing '\(line)' in:\n\(r.output)")
        }
        XCTAssertFalse(r.output.contains("more layers"), "all 7 candidate layers are listed: nothing more to mention")
        let zoo = try runXAI(["inspect", "resnet18"])
        XCTAssertEqual(zoo.status, 0, zoo.output + zoo.error)
        for line in ["input     input [Nx3x224x224]", "output    logits [Nx1000]", "params    11.70 M", "FLOPs     3.628 GFLOP per image"] {
            XCTAssertTrue(zoo.output.contains(line), "missing '\(line)' in:\n\(zoo.output)")
        }
        XCTAssertTrue(zoo.output.contains("more layers (--all-layers lists them)"), zoo.output)
        let all = try runXAI(["inspect", "resnet18", "--all-layers"])
        XCTAssertGreaterThan(all.output.split(separator: "\n").count, zoo.output.split(separator: "\n").count)
        let missing = try runXAI(["inspect", "no-such-model"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.error.contains("no-such-model"), missing.error)
    }

    func testShardsSplitTheInputsWithoutOverlap() throws {
        let folder = fixturesDirectory + "/images"
        let pictures = ["rgb8.png", "rgba8.png", "gray8.png", "palette.png", "rgb16.png", "photo.jpg"]
        let manifest = try temporaryFolder() + "/inputs.txt"
        try pictures.map { folder + "/" + $0 }.joined(separator: "\n").write(toFile: manifest, atomically: true, encoding: .utf8)
        var seen: [String] = []
        for i in 0..<3 {
            let out = try temporaryFolder()
            let r = try runXAI(["explain", model, manifest, "--method", "gradcam", "--shard", "\(i)/3", "--save", "raw", "--out", out, "--quiet"])
            XCTAssertEqual(r.status, 0, r.output + r.error)
            seen += try FileManager.default.contentsOfDirectory(atPath: out).filter { $0 != "results.jsonl" }
        }
        // Every picture of the manifest exactly once.
        XCTAssertEqual(seen.sorted(), ["gray8", "palette", "photo", "rgb16", "rgb8", "rgba8"])
    }

    func testPredictAndMethods() throws {
        let logits = try NPY.read(fixturesDirectory + "/models/small_resnet/logits.npy")
        let out = try temporaryFolder()
        let r = try runXAI(["predict", model, tensor, "--top", "3", "--save-logits", out])
        XCTAssertEqual(r.status, 0, r.output + r.error)
        let saved = try NPY.read(out + "/input_1.logits.npy")
        XCTAssertLessThan(relativeL2(doubles(saved), Array(logits.scalars[(logits.shape[1])...]).map(Double.init)), 1e-4)
        let row = Array(logits.scalars[0..<logits.shape[1]])
        let best = row.indices.max { row[$0] < row[$1] }!
        XCTAssertTrue(r.output.contains("input_0:\n" + String(format: "  %5d", best)), r.output)
        let methods = try runXAI(["methods"])
        for name in ["saliency", "ig", "gradcam", "occlusion", "lime", "kernelshap", "rise", "mp"] {
            XCTAssertTrue(methods.output.contains(name), name)
        }
    }

    func testFeatureMaskPictureGivesOneSegmentPerColour() throws {
        let out = try temporaryFolder()
        var pixels = [UInt8](repeating: 0, count: 64 * 64 * 3)
        for p in 0..<(64 * 64) where (p % 64) >= 32 { pixels[3 * p] = 200 }           // right half red
        for p in 0..<(64 * 64) where (p / 64) >= 40 { pixels[3 * p + 2] = 90 }         // bottom band blue
        try RGBImage(width: 64, height: 64, pixels: pixels).writePNG(out + "/mask.png")
        let r = try runXAI(["explain", model, tensor, "--method", "kernelshap", "--samples", "20", "--feature-mask", out + "/mask.png",
                            "--out", out + "/maps", "--quiet", "--save", "raw"])
        XCTAssertEqual(r.status, 0, r.output + r.error)
        XCTAssertEqual(try NPY.read(out + "/maps/input_0/kernelshap.raw.npy").shape, [4])
        XCTAssertEqual(Set(try NPY.read(out + "/maps/input_0/segments.npy").scalars), [0, 1, 2, 3])
    }

    func testDemoPrintsItsMetrics() throws {
        let demo = URL(fileURLWithPath: fixturesDirectory).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Demo").path
        let out = try temporaryFolder()
        let r = try runXAI(["demo", "--folder", demo, "--method", "cam,gradcam", "--out", out, "--quiet"])
        XCTAssertEqual(r.status, 0, r.output + r.error)
        XCTAssertTrue(r.output.contains("24 maps written"), r.output)
        XCTAssertTrue(r.output.contains("pointing_game (higher)"), r.output)
        // Each method's row has four scores over the 12 samples.
        for method in ["cam", "gradcam"] {
            let row = try XCTUnwrap(r.output.split(separator: "\n").first { $0.hasPrefix(method + " ") }, r.output)
            XCTAssertEqual(row.components(separatedBy: "(12)").count - 1, 4, String(row))
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/index.html"))
    }

    // MARK: Images

    func testDecodersMatchPillow() throws {
        let folder = fixturesDirectory + "/images"
        for name in ["rgb8.png", "rgba8.png", "gray8.png", "palette.png", "rgb16.png", "photo.jpg"] {
            let image = try RGBImage.read(folder + "/" + name)
            let expected = try NPY.read(folder + "/\(name).expected.npy")
            XCTAssertEqual([image.height, image.width, 3], expected.shape.dims, name)
            let worst = zip(image.pixels, expected.scalars).map { abs(Int($0) - Int($1)) }.max() ?? 0
            // JPEG decoders may round differently; PNG must be exact.
            XCTAssertLessThanOrEqual(worst, name.hasSuffix(".jpg") ? 2 : 0, name)
        }
        XCTAssertThrowsError(try RGBImage.read(folder + "/rgb8.png.expected.npy")) { error in
            XCTAssertTrue("\(error)".contains("rgb8.png.expected.npy"), "\(error)")
        }
    }

    func testPNGRoundTripAndAntialiasedResize() throws {
        let folder = fixturesDirectory + "/images"
        let image = try RGBImage.read(folder + "/rgb8.png")
        let path = try temporaryFolder() + "/copy.png"
        try image.writePNG(path)
        XCTAssertEqual(try RGBImage.read(path), image)
        let resized = try image.resized(width: 31, height: 23)
        let expected = try NPY.read(folder + "/resized_23x31.npy")
        let worst = zip(resized.pixels, expected.scalars).map { abs(Int($0) - Int($1)) }.max() ?? 0
        XCTAssertEqual(worst, 0, "Pillow's antialiased bilinear resize, to the bit")
    }
}

/// Long runs keep a flat memory profile: explaining 10,000 images (a manifest naming 20 small
/// pictures 500 times each, so every line is its own output folder) ends with no more resident
/// memory than after the first 100. A small model keeps the test short.
final class ExplainMemoryTests: XCTestCase {
    func testMemoryStaysFlatOverManyImages() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("xai-memory-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder + "/in", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var rng = SeededGenerator(seed: 5)
        var names: [String] = []
        for i in 0..<20 {
            let pixels = (0..<(28 * 32 * 3)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let name = folder + "/in/\(String(format: "%02d", i)).png"
            try RGBImage(width: 28, height: 32, pixels: pixels).writePNG(name)
            names.append(name)
        }
        let count = 10_000
        try (0..<count).map { names[$0 % names.count] }.joined(separator: "\n").write(toFile: folder + "/inputs.txt", atomically: true, encoding: .utf8)
        let model = fixturesDirectory + "/models/plain_cnn/model.onnx"
        let r = try runXAI(["explain", model, folder + "/inputs.txt", "--method", "saliency", "--save", "raw", "--out", folder + "/out",
                            "--quiet", "--log-memory", folder + "/memory.txt"])
        XCTAssertEqual(r.status, 0, r.output + r.error)
        XCTAssertTrue(r.output.contains("\(count) maps written"), r.output)
        let rss = try String(contentsOfFile: folder + "/memory.txt", encoding: .utf8).split(separator: "\n")
            .map { Int($0.split(separator: " ")[1])! }
        XCTAssertEqual(rss.count, count)
        let (after100, end) = (rss[100], rss[count - 1])
        print("resident memory: \(after100) KiB after 100 images, \(end) KiB after \(count)")
        XCTAssertGreaterThan(after100, 0)
        XCTAssertLessThanOrEqual(end, after100 + after100 / 20 + 4096, "resident memory grew from \(after100) to \(end) KiB")
    }
}
