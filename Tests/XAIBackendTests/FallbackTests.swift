import XCTest
import XAI
import XAITestSupport

/// A backend that implements only memory: every primitive goes to the float64 host fallback of the
/// checked entry points. It runs the whole op table and must match the reference, which is how a
/// new backend can come up one primitive at a time.
final class HostOnlyBackend: Backend, @unchecked Sendable {
    final class Storage: DeviceStorage, @unchecked Sendable {
        let tensor: Tensor
        init(_ t: Tensor) { tensor = t }
    }
    let device = Device.cpu
    let name = "host-only test backend"
    let memoryBudget = 1 << 28
    var supported: Set<Primitive> = []
    nonisolated(unsafe) var fallbacks = 0

    let details = BackendDetails(facts: [("arithmetic", "memory only: every primitive on the host")])
    func supports(_ primitive: Primitive) -> Bool {
        if !supported.contains(primitive) { fallbacks += 1 }
        return supported.contains(primitive)
    }
    func upload(_ tensor: Tensor) throws -> DeviceArray { DeviceArray(shape: tensor.shape, storage: Storage(tensor)) }
    func download(_ array: DeviceArray) throws -> Tensor {
        guard let s = array.storage as? Storage else { throw XAIError.wrongDevice(op: "download", expected: name, got: "\(type(of: array.storage))") }
        return try s.tensor.reshaped(array.shape)
    }
    func filled(_ shape: Shape, value: Float) throws -> DeviceArray { try upload(Tensor(shape: shape, repeating: value)) }
}

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
