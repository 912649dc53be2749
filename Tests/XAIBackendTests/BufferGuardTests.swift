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
        // And the tiled kernel with 4 x 4 sub-blocks (float4 reads of padded local rows).
        let subBlocks = GEMMConfig(tile: 32, workPerThread: 4, kSlice: 8, vectorWidth: 4, doubleBuffer: true, subBlock: 4)
        let list = [("opencl", cl), ("opencl-\(other.engine.rawValue)", try OpenCLBackend(index: 0, gemm: other)),
                    ("opencl-sb4", try OpenCLBackend(index: 0, gemm: subBlocks))]
        for (_, backend) in list { backend.guardFloats = 64 }
        return list
    }

    /// A memory budget that fits one image's im2col columns at a time: forward and backward
    /// convolutions of three images go through in chunks of one, stay inside their buffers and give
    /// the CPU's values.
    func testConvolutionsChunkedByTheMemoryBudgetStayInTheirBuffers() throws {
        _ = try TestBackends.requireOpenCL()
        // One image's columns: 2 channels x 3x3 taps x 9x9 positions x 4 bytes = 5832; a quarter of
        // the budget holds one image and not two.
        let backend = try OpenCLBackend(index: 0, memoryBudget: 4 * 5832 * 3 / 2)
        backend.guardFloats = 64
        let cpu = CPUBackend()
        let params = Conv2DParams(stride: 1, padding: 1)
        let x = Tensor.uniform([3, 2, 9, 9], seed: 11), w = Tensor.uniform([4, 2, 3, 3], seed: 12), gy = Tensor.uniform([3, 4, 9, 9], seed: 13)
        do {
            let forward = try backend.download(try backend.conv2d(try backend.upload(x), weight: try backend.upload(w), bias: nil, params: params,
                                                                  activation: .identity))
            let expected = try cpu.download(try cpu.conv2d(try cpu.upload(x), weight: try cpu.upload(w), bias: nil, params: params, activation: .identity))
            XCTAssertEqual(forward.shape, expected.shape)
            for (a, b) in zip(forward.scalars, expected.scalars) { XCTAssertEqual(a, b, accuracy: 1e-4) }
            let backward = try backend.download(try backend.conv2dBackwardInput(try backend.upload(gy), weight: try backend.upload(w), params: params,
                                                                                inputShape: x.shape))
            let reference = try cpu.download(try cpu.conv2dBackwardInput(try cpu.upload(gy), weight: try cpu.upload(w), params: params,
                                                                          inputShape: x.shape))
            XCTAssertEqual(backward.shape, reference.shape)
            for (a, b) in zip(backward.scalars, reference.scalars) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        }
        XCTAssertEqual(backend.guards.takeViolations(), [])
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
