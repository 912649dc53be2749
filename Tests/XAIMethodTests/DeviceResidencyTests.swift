import Foundation
import XCTest
import XAI
import XAITestSupport
@testable import XAIMethods

/// What crosses between host and device (issue 32, item 1), counted by the OpenCL backend on PoCL:
/// SmoothGrad moves its image in and its map out (plus the clean logits that pick the class), its
/// noise made on the device has the bits the CPU draws, and its sums do not depend on batching.
final class DeviceResidencyTests: XCTestCase {
    var smallResNet: MethodReferenceTests.Case { MethodReferenceTests.cases[0] }

    func image(_ c: MethodReferenceTests.Case) throws -> Tensor {
        let per = c.input.shape.count / c.input.shape[0]
        return try Tensor(shape: Shape([1] + c.input.shape.dims.dropFirst()), scalars: Array(c.input.scalars[0..<per]))
    }

    /// The small ResNet on the OpenCL backend with its transfer counters, its first image, and its
    /// number of classes.
    func countedModel() throws -> (counted: CountsTransfers, model: ExplainedModel, x: Tensor, classes: Int) {
        let cl = try TestBackends.requireOpenCL()
        let counted = try XCTUnwrap(cl as? CountsTransfers, "the OpenCL backend counts no transfers")
        let model = try ExplainedModel(graph: smallResNet.graph, backend: cl)
        let x = try image(smallResNet)
        return (counted, model, x, try model.logits(try cl.upload(x)).shape.count)
    }

    func testSmoothGradMovesTheImageInAndTheMapOut() throws {
        let (counted, model, x, classes) = try countedModel()
        for kind in SmoothGrad.Kind.allCases {
            let before = counted.transfers
            _ = try SmoothGrad(base: Saliency(model: model), kind: kind, samples: 50, internalBatchSize: 8, seed: 3).attribute(x)
            let d = counted.transfers.since(before)
            XCTAssertEqual(d.bytesToDevice, x.shape.count * 4, "\(kind): only the image goes to the device")
            XCTAssertEqual(d.bytesFromDevice, (classes + x.shape.count) * 4, "\(kind): the clean logits and the map come back")
            XCTAssertEqual(d.hostWaits, 3, "\(kind): the upload, the logits and the map")
            XCTAssertGreaterThan(d.kernelLaunches, 7 * 2, "\(kind): 7 batches of forwards and backwards")
        }
        // Saliency: the image in, the logits and the gradient out; its seed is made on the device.
        let before = counted.transfers
        _ = try Saliency(model: model).attribute(x)
        let d = counted.transfers.since(before)
        XCTAssertEqual(d.bytesToDevice, x.shape.count * 4)
        XCTAssertEqual(d.bytesFromDevice, (classes + x.shape.count) * 4)
    }

    /// Integrated Gradients sums its path gradients on the device: what comes back (the clean
    /// logits, the map, the completeness check's two logit rows) and the host's waits do not
    /// depend on the number of path batches; the steps' positions and weights go over once.
    func testIntegratedGradientsSumsOnTheDevice() throws {
        let (counted, model, x, classes) = try countedModel()
        var waits: [Int] = [], maps: [Tensor] = []
        for batch in [4, 32] {
            let before = counted.transfers
            let a = try IntegratedGradients(model: model, steps: 32, internalBatchSize: batch).attribute(x)
            let d = counted.transfers.since(before)
            XCTAssertEqual(d.bytesFromDevice, (3 * classes + x.shape.count) * 4, "batches of \(batch)")
            XCTAssertEqual(d.bytesToDevice, 2 * x.shape.count * 4 + 2 * 32 * 4, "batches of \(batch): the batch, the baseline, the steps")
            waits.append(d.hostWaits)
            maps.append(a.raw!)
        }
        XCTAssertEqual(waits[0], waits[1], "host waits for 8 path batches and for 1")
        XCTAssertEqual(maps[0].scalars.map { $0.bitPattern }, maps[1].scalars.map { $0.bitPattern }, "the same bits for both batchings")
    }

    /// Perturbation methods read one score per copy: only the target's column comes back (4 bytes
    /// a copy), whatever the batching, incremental occlusion or full passes, for logits and for
    /// probabilities (the softmax is taken on the device; the clean probability goes the same way,
    /// its logits row up and its score back).
    func testPerturbedCopiesReturnOnlyTheTargetScore() throws {
        let (counted, model, x, classes) = try countedModel()
        // 64x64 with 16x16 windows at stride 16: 16 copies.
        for output in ScoreOutput.allCases {
            let clean = output == .probability ? 1 : 0
            for incremental in [true, false] {
                for batch in [5, 16] {
                    let before = counted.transfers
                    let a = try Occlusion(model: model, window: (16, 16), stride: (16, 16), incremental: incremental, perturbationsPerEval: batch,
                                          output: output).attribute(x)
                    let d = counted.transfers.since(before)
                    let what = "\(output), incremental \(incremental), batches of \(batch)"
                    XCTAssertEqual(d.bytesFromDevice, (classes + clean + 16) * 4, "\(what): the clean logits (and probability) and one score a copy")
                    XCTAssertEqual(d.bytesToDevice, (3 * x.shape.count + 16 * 4 + clean * classes) * 4,
                                   "\(what): the image twice and its baseline, 16 rectangles of 4 integers (and the clean logits)")
                    XCTAssertEqual(a.map.shape, [1, 64, 64])
                }
            }
        }
    }

    /// RISE draws its grids on the device and keeps each mask's score there for the masks' sums:
    /// what goes over is the image (twice: the clean logits', then the copies') and its baseline,
    /// no grid or shift (which took 8 + 4 s^2 bytes a mask) and no score or weight (4 bytes a mask
    /// each way). What comes back is the clean logits and the two halves' sums. The host waits
    /// for the uploads, the clean logits, each forward batch (progress counts finished copies)
    /// and the two sums, and the map's bits do not depend on the batches.
    func testRISEKeepsItsMasksAndScoresOnTheDevice() throws {
        let (counted, model, x, classes) = try countedModel()
        let plane = x.shape[2] * x.shape[3]
        for masks in [64, 200] {
            var maps: [[UInt32]] = []
            for batch in [32, 7] {
                let before = counted.transfers
                let a = try RISE(model: model, masks: masks, gridSize: 7, seed: 4, perturbationsPerEval: batch).attribute(x)
                let d = counted.transfers.since(before)
                let what = "\(masks) masks in batches of \(batch)"
                XCTAssertEqual(d.bytesToDevice, 3 * x.shape.count * 4, what)
                XCTAssertEqual(d.bytesFromDevice, (classes + 2 * plane) * 4, what)
                XCTAssertEqual(d.hostWaits, 3 + 1 + (masks + batch - 1) / batch + 2, what)
                maps.append(a.map.scalars.map(\.bitPattern))
            }
            XCTAssertEqual(maps[0], maps[1], "\(masks) masks: the same bits for batches of 32 and 7")
        }
    }

    /// Meaningful Perturbation makes its backward's seed on the device from the logits there: an
    /// Adam step moves the mask over and its gradient back, nothing else (before: the logits row
    /// back and the seed over, every step). The score is read at the first step and at the end.
    func testMeaningfulPerturbationStepsMoveOnlyTheMaskAndItsGradient() throws {
        let (counted, model, x, classes) = try countedModel()
        let (s, iterations, plane) = (8, 5, x.shape[2] * x.shape[3])
        for output in ScoreOutput.allCases {
            let before = counted.transfers
            let a = try MeaningfulPerturbation(model: model, iterations: iterations, maskSize: s, blurSigma: 4, output: output).attribute(x)
            let d = counted.transfers.since(before)
            // The image for the clean logits, the image and its blurred copy; a mask a step, the
            // final objective's and the one upsampled for the map.
            XCTAssertEqual(d.bytesToDevice, (3 * x.shape.count + (iterations + 2) * s * s) * 4, "\(output)")
            // The clean logits; a gradient a step and the final objective's; two scores; the map.
            XCTAssertEqual(d.bytesFromDevice, (classes + (iterations + 1) * s * s + 2 + plane) * 4, "\(output)")
            XCTAssertEqual(a.diagnostics["initialScore"]?.count, 1)
            XCTAssertEqual(a.diagnostics["finalLoss"]?.count, 1)
        }
    }

    /// Score-CAM keeps each masked copy's target logit on the device and takes the channels'
    /// softmax there: what comes back does not depend on the batches (before: each copy's logits
    /// row, 4 bytes a class a channel), and only the image goes over (twice: the clean forward's,
    /// then the copies').
    func testScoreCAMKeepsItsScoresOnTheDevice() throws {
        let (counted, model, x, classes) = try countedModel()
        var waits: [Int] = []
        for batch in [3, 64] {
            let before = counted.transfers
            let a = try ScoreCAM(model: model, internalBatchSize: batch).attribute(x)
            let d = counted.transfers.since(before)
            XCTAssertEqual(d.bytesToDevice, 2 * x.shape.count * 4, "batches of \(batch)")
            // The clean logits, the layer-sized map and the upsampled one.
            XCTAssertEqual(d.bytesFromDevice, (classes + a.raw!.shape.count + a.map.shape.count) * 4, "batches of \(batch)")
            waits.append(d.hostWaits)
        }
        XCTAssertEqual(waits[0], waits[1], "host waits for batches of 3 and 64")
    }

    /// Ablation-CAM makes its ablated copies on the device from the layer's activation there and
    /// keeps their scores there: what goes over is the image and a rectangle of 4 integers a
    /// channel (its row of the activation, ablated to 0 after the layer's ReLU), what comes back the clean logits, the
    /// layer's smallest value and the maps (before: every copy's activations over, C x h x w floats
    /// a channel, and its logits row back), whatever the batches.
    func testAblationCAMMakesItsCopiesOnTheDevice() throws {
        let (counted, model, x, classes) = try countedModel()
        let channels = try model.summary().shapes[try model.camLayer(nil)]![1]
        var waits: [Int] = []
        for batch in [3, 64] {
            let before = counted.transfers
            let a = try AblationCAM(model: model, internalBatchSize: batch).attribute(x)
            let d = counted.transfers.since(before)
            XCTAssertEqual(d.bytesToDevice, (x.shape.count + 4 * channels) * 4, "batches of \(batch)")
            XCTAssertEqual(d.bytesFromDevice, (classes + 1 + a.raw!.shape.count + a.map.shape.count) * 4, "batches of \(batch)")
            waits.append(d.hostWaits)
        }
        XCTAssertEqual(waits[0], waits[1], "host waits for batches of 3 and 64")
    }

    /// The same noise on the CPU and on OpenCL (drawn on each device), so the maps agree to the
    /// gradients' rounding; on each backend every internal batch size gives the same bits.
    func testSmoothGradAgreesAcrossBackendsAndBatchSizes() throws {
        let c = smallResNet
        let x = try image(c)
        var maps: [(String, Tensor)] = []
        for (label, backend) in TestBackends.all() where label != "cpu-im2col" {
            let model = try ExplainedModel(graph: c.graph, backend: backend)
            for kind in SmoothGrad.Kind.allCases {
                let runs = try [3, 16].map { try SmoothGrad(base: Saliency(model: model), kind: kind, samples: 16, internalBatchSize: $0, seed: 11).attribute(x).raw! }
                XCTAssertEqual(runs[0].scalars.map { $0.bitPattern }, runs[1].scalars.map { $0.bitPattern }, "\(label) \(kind): batches of 3 and 16")
                if kind == .varGrad { maps.append((label, runs[0])) }
            }
        }
        for (label, m) in maps.dropFirst() {
            XCTAssertLessThan(relativeL2(doubles(m), doubles(maps[0].1)), 1e-4, "\(label) against \(maps[0].0)")
        }
    }

    /// The device path (noise and sums on the device) and the host path (given noise, a wrapped
    /// method that takes host tensors) give the same bits on each backend when the given noise is
    /// the generator's.
    func testDevicePathEqualsTheHostPath() throws {
        struct HostSaliency: AttributionMethod {
            let inner: Saliency
            var name: String { "host saliency" }
            var explainedModel: ExplainedModel? { inner.model }
            func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
                try inner.attribute(input, target: target, baseline: baseline)
            }
        }
        let c = smallResNet
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: c.graph, backend: backend)
            let (samples, seed): (Int, UInt64) = (6, 5)
            let n = c.input.shape[0], per = c.input.shape.count / n
            var z: [Float] = []
            for stream in 0..<(n * samples) { z += (0..<per).map { CounterRandom.normal(seed: seed, stream: UInt64(stream), index: $0) } }
            let noise = try Tensor(shape: [n * samples, per], scalars: z)
            let target = Target.perImage(c.targets)
            for kind in SmoothGrad.Kind.allCases {
                let device = try SmoothGrad(base: Saliency(model: model), kind: kind, samples: samples, internalBatchSize: 4, seed: seed).attribute(c.input, target: target)
                let given = try SmoothGrad(base: Saliency(model: model), kind: kind, samples: samples, internalBatchSize: 4, seed: seed, noise: noise)
                    .attribute(c.input, target: target)
                let host = try SmoothGrad(base: HostSaliency(inner: Saliency(model: model)), kind: kind, samples: samples, internalBatchSize: 4, seed: seed)
                    .attribute(c.input, target: target)
                XCTAssertEqual(device.raw!.scalars.map { $0.bitPattern }, given.raw!.scalars.map { $0.bitPattern }, "\(kind) on \(label): given noise")
                XCTAssertEqual(device.raw!.scalars.map { $0.bitPattern }, host.raw!.scalars.map { $0.bitPattern }, "\(kind) on \(label): host-side wrapped method")
                XCTAssertEqual(device.targets, c.targets, label)
            }
        }
    }

    /// A forward's kernel launches do not grow with the batch: no per-image loops on the device.
    func testForwardLaunchesDoNotGrowWithTheBatch() throws {
        let cl = try TestBackends.requireOpenCL()
        guard let counted = cl as? CountsTransfers else { return XCTFail("the OpenCL backend counts no transfers") }
        let model = try ExplainedModel(graph: smallResNet.graph, backend: cl)
        let x = try image(smallResNet)
        var launches: [Int] = []
        for batch in [1, 4] {
            let input = try cl.upload(try Tensor(shape: Shape([batch] + x.shape.dims.dropFirst()), scalars: (0..<batch).flatMap { _ in x.scalars }))
            _ = try model.logits(input)
            let before = counted.transfers
            _ = try model.logits(input)
            let d = counted.transfers.since(before)
            XCTAssertEqual(d.hostWaits, 1, "one wait: the logits")
            launches.append(d.kernelLaunches)
        }
        XCTAssertEqual(launches[0], launches[1], "launches of one forward at batch 1 and 4")
        XCTAssertGreaterThan(launches[0], 0)
    }

    /// A device that runs out of memory in a batch: SmoothGrad and IG halve the batch and go on,
    /// with the bits of the smaller batch (the sums do not depend on the batching); a device that
    /// cannot hold even one item still fails, naming the out-of-memory.
    func testOutOfMemoryHalvesTheBatch() throws {
        let c = smallResNet
        let x = try image(c)
        // The largest array a pass makes at batch 2 is the limit: batches of 8 and 4 fail.
        let probe = HostOnlyBackend(limit: .max)
        let probeModel = try ExplainedModel(graph: c.graph, backend: probe)
        _ = try SmoothGrad(base: Saliency(model: probeModel), samples: 2, internalBatchSize: 2, seed: 1).attribute(x)
        let limited = HostOnlyBackend(limit: probe.largest)
        let model = try ExplainedModel(graph: c.graph, backend: limited)
        let methods: [(String, (Int) -> any AttributionMethod)] = [
            ("smoothgrad", { SmoothGrad(base: Saliency(model: model), kind: .varGrad, samples: 8, internalBatchSize: $0, seed: 4) }),
            ("ig", { IntegratedGradients(model: model, steps: 8, internalBatchSize: $0) }),
        ]
        for (name, make) in methods {
            limited.refusals = 0
            let halved = try make(8).attribute(x)
            XCTAssertGreaterThan(limited.refusals, 0, "\(name): batches of 8 ran out of memory")
            let pairs = try make(2).attribute(x)
            XCTAssertEqual(halved.raw!.scalars.map { $0.bitPattern }, pairs.raw!.scalars.map { $0.bitPattern }, "\(name): halved to 2")
        }
        let tiny = HostOnlyBackend(limit: 16)
        XCTAssertThrowsError(try SmoothGrad(base: Saliency(model: try ExplainedModel(graph: c.graph, backend: tiny)), samples: 2, seed: 1).attribute(x)) { error in
            guard case XAIError.outOfMemory = error else { return XCTFail("\(error)") }
        }
    }

    /// The perturbation methods halve a batch of copies the device cannot hold and go on: the maps
    /// are those of a run with the smaller batch from the start, and nothing is counted twice.
    func testOutOfMemoryHalvesThePerturbationBatch() throws {
        let c = smallResNet
        let x = try image(c)
        let methods: [(String, (ExplainedModel, Int?) -> any AttributionMethod)] = [
            ("occlusion", { Occlusion(model: $0, window: (4, 4), stride: (4, 4), incremental: false, perturbationsPerEval: $1) }),
            ("rise", { RISE(model: $0, masks: 12, gridSize: 3, seed: 2, perturbationsPerEval: $1) }),
            ("kernelshap", { KernelSHAP(model: $0, samples: 20, segmentation: .grid(rows: 2, columns: 2), seed: 3, perturbationsPerEval: $1) }),
        ]
        for (name, make) in methods {
            // The largest array a run makes at batches of 2 is the limit: larger batches fail.
            let probe = HostOnlyBackend(limit: .max)
            let pairs = try make(try ExplainedModel(graph: c.graph, backend: probe), 2).attribute(x)
            let limited = HostOnlyBackend(limit: probe.largest)
            let halved = try make(try ExplainedModel(graph: c.graph, backend: limited), 16).attribute(x)
            XCTAssertGreaterThan(limited.refusals, 0, "\(name): batches of 16 ran out of memory")
            XCTAssertEqual(halved.map.scalars.map { $0.bitPattern }, pairs.map.scalars.map { $0.bitPattern }, "\(name): halved to 2")
        }
    }
}
