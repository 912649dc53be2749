import COpenCL
import XCTest
import XAI
import XAITestSupport
@testable import XAIOpenCL

/// No OpenCL kernel writes past the buffers it was given. Results cannot show such a write (on most
/// devices it lands in memory nobody reads, until it does not), so these runs guard every buffer
/// with a canary (``BufferGuards``) and check each one as it is released: the op table forward and
/// backward (with the default work-group size and with groups of 7, so that nearly every launch
/// has work-items past its end and every bounds check matters), and whole explanations, on both
/// GEMM engines.
final class BufferGuardTests: XCTestCase {
    func guardedBackends() throws -> [(String, OpenCLBackend)] {
        _ = try TestBackends.requireOpenCL()
        let cl = try OpenCLBackend(index: 0)
        let other: GEMMConfig = cl.gemmConfig.engine == .tiled ? .rows : .baseline
        let list = [("opencl", cl), ("opencl-\(other.engine.rawValue)", try OpenCLBackend(index: 0, gemm: other))]
        for (_, backend) in list { backend.guardFloats = 64 }
        return list
    }

    /// The detector itself: five floats written into a four-float buffer are seen.
    func testAWritePastTheEndIsSeen() throws {
        let (_, backend) = try guardedBackends()[0]
        do {
            let a = try backend.upload(Tensor.uniform([4], seed: 1))
            var five: [Float] = [1, 2, 3, 4, 5]
            let status = clEnqueueWriteBuffer(backend.queue, try backend.mem(a, "test"), cl_bool(CL_TRUE), 0, 20, &five, 0, nil, nil)
            XCTAssertEqual(status, CL_SUCCESS)
        }
        let found = backend.guards.takeViolations()
        XCTAssertEqual(found.count, 1, "\(found)")
        XCTAssertTrue(found.first?.contains("buffer of 4 floats was written at float 4") ?? false, "\(found)")
        XCTAssertEqual(backend.guards.takeViolations(), [])
        // A copy that overruns both of its buffers moves one guard's canary into the other's:
        // each buffer has its own canary, so that is seen too.
        do {
            let a = try backend.upload(Tensor.uniform([4], seed: 2)), b = try backend.upload(Tensor.uniform([4], seed: 3))
            XCTAssertEqual(clEnqueueCopyBuffer(backend.queue, try backend.mem(a, "test"), try backend.mem(b, "test"), 16, 16, 4, 0, nil, nil), CL_SUCCESS)
            XCTAssertEqual(clFinish(backend.queue), CL_SUCCESS)
        }
        XCTAssertEqual(backend.guards.takeViolations().count, 1)
    }

    func testNoKernelWritesPastItsBuffersInTheOpTable() throws {
        for (label, backend) in try guardedBackends() {
          for groupSize in [256, 7] {
            backend.defaultGroupSize = groupSize
            defer { backend.defaultGroupSize = 256 }
            for c in opCases {
                do {
                    let inputs = try c.inputs.map(backend.upload)
                    let y = try c.forward(backend, inputs)
                    if let backward = c.backward {
                        _ = try backward(backend, inputs, try backend.upload(Tensor.uniform(y.shape, in: -1...1, seed: 5)))
                    }
                    _ = try backend.download(y)
                }
                let found = backend.guards.takeViolations()
                XCTAssertTrue(found.isEmpty, "\(c.name) on \(label), groups of \(groupSize): \(found)")
            }
          }
        }
    }

    func testNoKernelWritesPastItsBuffersInWholeExplanations() throws {
        let directory = fixturesDirectory + "/models/small_resnet"
        let graph = try Models.load(directory + "/model.onnx")
        let input = try NPY.read(directory + "/input.npy")
        for (label, backend) in try guardedBackends() {
            let model = try ExplainedModel(graph: graph, backend: backend)
            let methods: [any AttributionMethod] = [
                Saliency(model: model), IntegratedGradients(model: model, steps: 4), GradientCAM(model: model),
                Occlusion(model: model, window: (5, 5), stride: (3, 3)), RISE(model: model, masks: 16, seed: 2),
                KernelSHAP(model: model, samples: 24, segmentation: .grid(rows: 3, columns: 3), seed: 2),
            ]
            for m in methods {
                do { _ = try m.attribute(input, target: .predicted, baseline: .zero) }
                let found = backend.guards.takeViolations()
                XCTAssertTrue(found.isEmpty, "\(m.name) on \(label): \(found)")
            }
        }
    }
}
