import XCTest
import XAI
import XAITestSupport

/// The host fallback of the checked entry points, through ``HostOnlyBackend`` (XAITestSupport):
/// the whole op table and a model on a backend that implements nothing but memory.
final class FallbackTests: XCTestCase {
    func testEveryOpRunsThroughTheHostFallback() throws {
        let reference = ReferenceBackend()
        let backend = HostOnlyBackend()
        for c in opCases {
            let expected = try reference.download(try c.forward(reference, try c.inputs.map(reference.upload)))
            let got = try backend.download(try c.forward(backend, try c.inputs.map(backend.upload)))
            XCTAssertEqual(got.shape, expected.shape, c.name)
            if let m = mismatch(doubles(got), doubles(expected)) { XCTFail("\(c.name) through the fallback: \(m)") }
            if let backward = c.backward {
                let seed = Tensor.uniform(expected.shape, seed: 3)
                let a = try backward(reference, try c.inputs.map(reference.upload), try reference.upload(seed))
                let b = try backward(backend, try c.inputs.map(backend.upload), try backend.upload(seed))
                for (x, y) in zip(a, b) {
                    if let m = mismatch(doubles(try backend.download(y)), doubles(try reference.download(x))) { XCTFail("\(c.name) backward: \(m)") }
                }
            }
        }
        XCTAssertGreaterThan(backend.fallbacks, opCases.count, "the primitives went through the fallback")
    }

    /// A whole model explained on a backend that implements nothing but memory.
    func testAModelRunsOnTheFallbackAlone() throws {
        let dir = fixturesDirectory + "/models/small_resnet"
        let graph = try Models.load(dir + "/model.onnx")
        let input = try NPY.read(dir + "/input.npy")
        let fallback = try ExplainedModel(graph: graph, backend: HostOnlyBackend())
        let cpu = try ExplainedModel(graph: graph, backend: CPUBackend())
        let a = try Saliency(model: fallback).attribute(input)
        let b = try Saliency(model: cpu).attribute(input)
        XCTAssertEqual(a.targets, b.targets)
        XCTAssertLessThan(relativeL2(doubles(try XCTUnwrap(a.raw)), doubles(try XCTUnwrap(b.raw))), 1e-5)
    }

    /// Claiming a primitive without implementing it is reported with the primitive and backend named.
    func testAClaimedButMissingPrimitiveIsNamed() throws {
        let backend = HostOnlyBackend()
        backend.supported = [.softmax]
        let x = try backend.upload(Tensor.uniform([2, 5], seed: 1))
        XCTAssertThrowsError(try backend.softmax(x, axis: 1, log: false)) { error in
            guard case XAIError.unsupported(let op, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(op, "softmax")
            XCTAssertTrue(reason.contains("host-only test backend"), reason)
        }
    }
}
