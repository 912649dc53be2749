import Foundation
import XCTest
import XAI
import XAITestSupport

/// The same answer every run: two processes given the same inputs and knobs write the same bits
/// for every method, whatever the image batch, the perturbation batch and the thread count, and
/// record what computed them.
final class DeterminismTests: XCTestCase {

    /// Every `.npy` under `folder`, by path relative to it.
    func arrays(_ folder: String) throws -> [String: Data] {
        var found: [String: Data] = [:]
        let walker = FileManager.default.enumerator(atPath: folder)
        while let relative = walker?.nextObject() as? String {
            if relative.hasSuffix(".npy") { found[relative] = FileManager.default.contents(atPath: folder + "/" + relative) }
        }
        return found
    }

    /// A VGG-like network, a ResNet and a MobileNet block, on the CPU and on OpenCL: every method in two processes, one
    /// with image batches of 8, the library's perturbation batches and every core, the other one
    /// image, one thread and batches of 3, writes identical maps and raw arrays; and the CPU's
    /// arrays agree with OpenCL's.
    func testTwoProcessesWriteTheSameBitsForEveryMethod() throws {
        // The CPU, and OpenCL where a device opens (PoCL here, in CI).
        let devices = ["cpu"] + (TestBackends.openCL() == nil ? [] : ["gpu"])
        var folders: [String: String] = [:]  // "device model" -> the first process's output
        for device in devices {
          for name in ["plain_cnn", "small_resnet", "mobile_block"] {
            let model = fixturesDirectory + "/models/\(name)/model.onnx", input = fixturesDirectory + "/models/\(name)/input.npy"
            let (first, second) = (try temporaryFolder(), try temporaryFolder())
            let common = ["explain", model, input, "--method", "all", "--save", "raw", "--quiet", "--samples", "64", "--masks", "256", "--iterations", "20",
                          "--device", device]
            let a = try runXAI(common + ["--out", first, "--image-batch", "8"])
            let b = try runXAI(common + ["--out", second, "--image-batch", "1", "--batch", "3"],
                               environment: ["OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"])
            XCTAssertEqual(a.status, 0, a.error)
            XCTAssertEqual(b.status, 0, b.error)
            let (x, y) = (try arrays(first), try arrays(second))
            XCTAssertGreaterThanOrEqual(x.count, 2 * MethodRegistry.names.count - 4, "\(name): maps and raw arrays of every method that applies")
            XCTAssertEqual(Set(x.keys), Set(y.keys), name)
            for (file, bytes) in x { XCTAssertEqual(bytes, y[file], "\(device) \(name) \(file) differs between the two processes") }
            folders["\(device) \(name)"] = first
          }
        }
        // The two devices agree on every array of every method: to 1e-4 (relative L2; seen: at most
        // 7.3e-6), but Meaningful Perturbation's 20 optimiser steps. Its masks agree to 1e-7 through
        // 14 steps on small_resnet's second image, then part (2.5e-4 at 16 steps, 1.2e-3 at 20, the
        // largest cell 0.011 apart): a clamp to [0, 1] or Adam's normalised step turns a rounding
        // difference into a different step.
        guard devices.count == 2 else { return }
        for name in ["plain_cnn", "small_resnet", "mobile_block"] {
            let cpu = try XCTUnwrap(folders["cpu \(name)"]), gpu = try XCTUnwrap(folders["gpu \(name)"])
            let files = try arrays(cpu).keys.sorted()
            XCTAssertEqual(Set(files), Set(try arrays(gpu).keys), name)
            for file in files {
                let a = try NPY.read(cpu + "/" + file), b = try NPY.read(gpu + "/" + file)
                XCTAssertEqual(a.shape, b.shape, "\(name) \(file)")
                let tolerance = file.hasSuffix("/mp.npy") || file.hasSuffix("/mp.raw.npy") ? 1e-2 : 1e-4
                XCTAssertLessThan(relativeL2(doubles(b), doubles(a)), tolerance, "\(name) \(file): the CPU and OpenCL differ")
            }
        }
    }

    /// Every result says what computed it; `--fast` says so too, and the report shows it.
    func testResultsRecordTheirProvenance() throws {
        let model = fixturesDirectory + "/models/small_resnet/model.onnx", input = fixturesDirectory + "/models/small_resnet/input.npy"
        for fast in [false, true] {
            let out = try temporaryFolder()
            let r = try runXAI(["explain", model, input, "--method", "saliency,occlusion", "--quiet", "--out", out] + (fast ? ["--fast"] : []))
            XCTAssertEqual(r.status, 0, r.error)
            let lines = try String(contentsOfFile: out + "/results.jsonl", encoding: .utf8).split(separator: "\n")
            XCTAssertFalse(lines.isEmpty)
            for line in lines {
                let record = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                let provenance = try XCTUnwrap(record["provenance"] as? [String: String])
                XCTAssertEqual(provenance["engine"], "xai \(XAIVersion.string)")
                XCTAssertEqual(provenance["precision"], fast ? "fast" : "exact")
                XCTAssertEqual(provenance["device"], record["device"] as? String)
                XCTAssertTrue(provenance["algorithms"]?.contains("direct convolutions") == true, "\(provenance)")
            }
            let report = try String(contentsOfFile: out + "/index.html", encoding: .utf8)
            XCTAssertTrue(report.contains("Computed by xai \(XAIVersion.string)") && report.contains(fast ? "fast precision" : "exact precision"))
        }
        let session = try Session(model, precision: .fast)
        XCTAssertEqual(session.provenance.precision, "fast")
        // Fast lets Winograd into forward-only passes where the CPU offers it; exact never does.
        XCTAssertEqual(session.backend.details.mayUseFastConvolutions, CPUBackend().offersWinograd)
        XCTAssertFalse(try Session(model).backend.details.mayUseFastConvolutions)
        XCTAssertEqual(session.info["precision"] as? String, "fast")
        XCTAssertEqual(try Session(model).provenance.algorithms.hasPrefix("direct convolutions"), true)
    }
}

/// The forward of a batch gives every image the bits it gets alone, on the CPU (oneDNN and the
/// OpenBLAS fallback) and on OpenCL: no product picks its kernel by the number of images.
final class BatchInvarianceTests: XCTestCase {
    func testEveryImageOfABatchHasTheLogitsItHasAlone() throws {
        let models = ["plain_cnn", "small_resnet", "mobile_block", "squeezenet1_1", "op_zoo"].map { "models/\($0)" }
            + ["vit_dynamo", "swin_dynamo", "convnext_dynamo"].map { "architectures/\($0)" }
        for (label, backend) in TestBackends.all() {
          for name in models {
            let model = try ExplainedModel(graph: try Models.load(fixturesDirectory + "/\(name)/model.onnx"), backend: backend)
            let shape = try XCTUnwrap(model.graph.imageInput).shape(batch: 1)
            let batch = Tensor.uniform(Shape([12] + shape.dims.dropFirst()), in: -2...2, seed: 17)
            let together = try model.logits(try model.backend.upload(batch)).scalars
            let per = together.count / 12
            for size in [1, 5] {
                var parts: [Float] = []
                for start in stride(from: 0, to: 12, by: size) {
                    let rows = Array(batch.scalars[(start * shape.count)..<(min(start + size, 12) * shape.count)])
                    let x = try Tensor(shape: Shape([rows.count / shape.count] + shape.dims.dropFirst()), scalars: rows)
                    parts += try model.logits(try model.backend.upload(x)).scalars
                }
                XCTAssertEqual(parts, together, "\(label) \(name): batches of \(size) against one of 12 (\(per) logits per image)")
            }
          }
        }
    }
}
