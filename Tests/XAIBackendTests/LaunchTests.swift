import Foundation
import XCTest
import XAI
import XAITestSupport
@testable import XAIOpenCL

/// Kernel launches on OpenCL (issue 32, item 2): the residual add and rectifier of a ResNet block
/// are stored by the convolution's GEMM (no launches of their own), and profiling events time
/// every launch the counters count.
final class LaunchTests: XCTestCase {
    func counted(_ backend: OpenCLBackend, _ body: () throws -> Void) rethrows -> TransferCounters {
        let before = backend.transfers
        try body()
        return backend.transfers.since(before)
    }

    /// relu(conv(x) + bias + skip) takes the launches of conv(x) + bias: the skip and the
    /// rectifier go into the GEMM's store, on both GEMM engines and through im2col chunks; the
    /// values are the CPU's.
    func testResidualAndActivationAreStoredByTheConvolution() throws {
        _ = try TestBackends.requireOpenCL()
        let cpu = CPUBackend()
        let x = Tensor.uniform([3, 4, 9, 9], seed: 1), w = Tensor.uniform([6, 4, 3, 3], seed: 2), bias = Tensor.uniform([6], seed: 3)
        let skip = Tensor.uniform([3, 6, 9, 9], seed: 4), w1 = Tensor.uniform([6, 4, 1, 1], seed: 5)
        for gemm in [GEMMConfig.rows, .baseline] {
            for (budget, lowering) in [(nil, ConvolutionLowering.im2col), (4 * 4 * 9 * 81 * 3 / 2, .im2col), (nil, .implicit)] {
                let cl = try OpenCLBackend(index: 0, memoryBudget: budget, gemm: gemm, convolution: lowering)
                for (weight, padding) in [(w, 1), (w1, 0)] {
                    let params = Conv2DParams(padding: padding)
                    let (xd, wd, bd, sd) = (try cl.upload(x), try cl.upload(weight), try cl.upload(bias), try cl.upload(skip))
                    _ = try cl.conv2d(xd, weight: wd, bias: bd, residual: sd, params: params, activation: .relu)
                    let plain = try counted(cl) { _ = try cl.conv2d(xd, weight: wd, bias: bd, params: params, activation: .identity) }
                    var fused: DeviceArray?
                    let withSkip = try counted(cl) { fused = try cl.conv2d(xd, weight: wd, bias: bd, residual: sd, params: params, activation: .relu) }
                    let what = "\(gemm.engine) \(lowering) \(weight.shape[2])x\(weight.shape[3]) budget \(budget.map(String.init) ?? "default")"
                    XCTAssertEqual(withSkip.kernelLaunches, plain.kernelLaunches, "\(what): launches with the skip and rectifier")
                    let got = try cl.download(try XCTUnwrap(fused))
                    let want = try cpu.download(try cpu.conv2d(try cpu.upload(x), weight: try cpu.upload(weight), bias: try cpu.upload(bias),
                                                               residual: try cpu.upload(skip), params: params, activation: .relu))
                    if let m = mismatch(doubles(got), doubles(want)) { XCTFail("\(what): \(m)") }
                }
            }
        }
    }

    /// A profiling backend times every launch: the kernels of a small convolution and softmax,
    /// as many launches as the counters saw, then nothing until the next launch.
    func testKernelProfileTimesEveryLaunch() throws {
        _ = try TestBackends.requireOpenCL()
        let cl = try OpenCLBackend(index: 0, profileKernels: true, convolution: .im2col)
        XCTAssertTrue(cl.profilesKernels)
        let x = try cl.upload(Tensor.uniform([2, 3, 8, 8], seed: 1)), w = try cl.upload(Tensor.uniform([5, 3, 3, 3], seed: 2))
        _ = try cl.takeKernelProfile()
        let d = try counted(cl) {
            let y = try cl.conv2d(x, weight: w, bias: nil, params: Conv2DParams(padding: 1), activation: .relu)
            _ = try cl.softmax(try y.reshaped([2, 320]), axis: 1, log: false)
        }
        let profile = try cl.takeKernelProfile()
        XCTAssertEqual(profile.reduce(0) { $0 + $1.launches }, d.kernelLaunches)
        XCTAssertTrue(profile.contains { $0.name == "conv2d_im2col" }, "\(profile)")
        XCTAssertTrue(profile.contains { $0.name.hasPrefix("gemm") }, "\(profile)")
        XCTAssertTrue(profile.contains { $0.name == "softmax_forward" }, "\(profile)")
        XCTAssertTrue(profile.allSatisfy { $0.seconds >= 0 && $0.launches > 0 })
        XCTAssertEqual(profile.map(\.seconds), profile.map(\.seconds).sorted(by: >), "longest first")
        XCTAssertEqual(try cl.takeKernelProfile(), [])
        // A backend opened without profiling records nothing.
        let plain = try OpenCLBackend(index: 0)
        _ = try plain.conv2d(try plain.upload(Tensor.uniform([1, 3, 8, 8], seed: 1)), weight: try plain.upload(Tensor.uniform([5, 3, 3, 3], seed: 2)),
                             bias: nil, params: Conv2DParams(padding: 1), activation: .relu)
        XCTAssertFalse(plain.profilesKernels)
        XCTAssertEqual(try plain.takeKernelProfile(), [])
    }

    /// Uploads and downloads of every size come back bit for bit: small ones from the caller's
    /// memory, large ones through the pinned staging buffer, in pieces when they exceed it (a
    /// small capacity here), and none writes past its buffer.
    func testTransfersThroughThePinnedStagingBuffer() throws {
        _ = try TestBackends.requireOpenCL()
        let cl = try OpenCLBackend(index: 0)
        cl.guardFloats = 64
        cl.stagingCapacity = 99_996
        for count in [1, 3, OpenCLBackend.stagedTransferBytes / 4 - 1, OpenCLBackend.stagedTransferBytes / 4, 24_999, 25_000, 77_777] {
            let t = Tensor.uniform([count], in: -3...3, seed: UInt64(count))
            let before = cl.transfers
            let back = try cl.download(try cl.upload(t))
            XCTAssertEqual(back.scalars.map { $0.bitPattern }, t.scalars.map { $0.bitPattern }, "\(count) floats")
            let d = cl.transfers.since(before)
            XCTAssertEqual(d.bytesToDevice, 4 * count)
            XCTAssertEqual(d.bytesFromDevice, 4 * count)
            XCTAssertEqual(d.hostWaits, 2)
            // A kernel reads what the staging wrote, and the staging reads what a kernel wrote.
            let doubled = try cl.download(try cl.binary(.add, try cl.upload(t), try cl.upload(t)))
            XCTAssertEqual(doubled.scalars, t.scalars.map { $0 + $0 }, "\(count) floats through a kernel")
        }
        XCTAssertEqual(cl.guards.takeViolations(), [])
    }
    /// `XAI_KERNEL_BUILD_LOG=1` (``OpenCLBackend/reportsBuilds``) reports each program the backend
    /// builds and each kernel it makes, once, in order, with the kernel's private memory per
    /// work-item (what the GPU check reads to see whether accumulators stayed in registers); off,
    /// nothing is reported.
    func testBuildReportsNameEachProgramAndKernelOnce() throws {
        _ = try TestBackends.requireOpenCL()
        let quiet = try OpenCLBackend(index: 0)
        quiet.reportsBuilds = false
        _ = try quiet.filled([5], value: 1)
        XCTAssertTrue(quiet.buildReports.isEmpty)
        let cl = try OpenCLBackend(index: 0)
        cl.reportsBuilds = true
        _ = try cl.filled([5], value: 1)
        _ = try cl.filled([7], value: 2)
        _ = try cl.unary(.relu, try cl.filled([3], value: -1))
        XCTAssertEqual(cl.buildReports.count, 3, cl.buildReports.joined(separator: "\n"))
        guard cl.buildReports.count == 3 else { return }
        XCTAssertTrue(cl.buildReports[0].hasPrefix("[kernel build] elementwise on \(cl.info.name) (-cl-std=CL1.2"), cl.buildReports[0])
        XCTAssertTrue(cl.buildReports[1].hasPrefix("[kernel build] elementwise.fill: private memory "), cl.buildReports[1])
        XCTAssertTrue(cl.buildReports[1].contains(" bytes per work-item, work-groups up to "), cl.buildReports[1])
        XCTAssertTrue(cl.buildReports[2].hasPrefix("[kernel build] elementwise.unary_forward: private memory "), cl.buildReports[2])
    }
}
