import Foundation
import XCTest
import XAI
import XAITestSupport

/// ONNX Resize of constants (vision transformers' position embeddings and bias tables) against
/// onnxruntime: every interpolation, rounding and coordinate mode the importer accepts
/// (Tools/make_resize_fixtures.py), folded at load and then run on every backend.
final class ResizeTests: XCTestCase {
    static let directory = fixturesDirectory + "/resize"

    func testResizeOfConstantsMatchesOnnxRuntime() throws {
        let cases = try FileManager.default.contentsOfDirectory(atPath: Self.directory).filter { $0.hasSuffix(".onnx") }.sorted()
        XCTAssertEqual(cases.count, 13)
        for file in cases {
            let name = String(file.dropLast(5))
            let graph = try ONNXImporter.load(path: Self.directory + "/" + file).optimized()
            XCTAssertFalse(graph.nodes.contains { if case .resize = $0.op { return true }; return false }, "\(name): folded at load")
            let x = try NPY.read(Self.directory + "/\(name).x.npy"), expected = try NPY.read(Self.directory + "/\(name).y.npy")
            for (label, backend) in TestBackends.all() {
                let y = try backend.download(try Executor(graph: graph, backend: backend).forward(try backend.upload(x)).output("y"))
                XCTAssertEqual(y.shape, expected.shape, "\(name) \(label)")
                if let m = mismatch(doubles(y), doubles(expected), rtol: 1e-5, atol: 1e-6) { XCTFail("\(name) \(label): \(m)") }
            }
        }
    }

    /// Resizing an activation, and the modes the importer does not implement, are refused with the node's name.
    func testWhatIsNotResizedIsRefused() throws {
        let graph = try ONNXImporter.load(path: Self.directory + "/linear_half_pixel_sizes.onnx")
        var activation = graph
        activation.nodes[0].inputs[0] = "x"
        let backend = CPUBackend()
        XCTAssertThrowsError(try Executor(graph: activation, backend: backend).forward(try backend.upload(Tensor.uniform([1, 2, 9, 4], seed: 3)))) { error in
            XCTAssertTrue("\(error)".contains("resize"), "\(error)")
            XCTAssertTrue("\(error)".contains("activation"), "\(error)")
        }
    }
}
