import Foundation
import XCTest
import XAI
import XAITestSupport
@testable import XAIOpenCL

/// Smaller tiles for grids too small to fill a GPU (issue 32): a ResNet-50 layer at batch 1 gives
/// a 128 x 128 tile a handful of work-groups on a device of 132 compute units. Each launch of the
/// tiled and tensor-core kernels picks its tile from a ladder (``GEMMConfig/shrinking``,
/// ``MMATiling/ladder``), and every step must give the bits of the configured tile: each element is
/// the same chain of fmas or `mma.sync` in k order, whatever the tile. The choice then follows the
/// grid without changing a map.
final class TileChoiceTests: XCTestCase {
    /// Products with bias, skip and rectifier over several blocks of every tile and ragged edges,
    /// both operands transposed and not, then every convolution case of the implicit-GEMM tests
    /// (forward with bias, skip and rectifier, and backward to the input): the bits.
    func bits(_ backend: OpenCLBackend) throws -> [[UInt32]] {
        var out: [[UInt32]] = []
        let (m, n, k, batch) = (150, 140, 45, 2)
        let a = try backend.upload(Tensor.uniform([batch * m * k], in: -1...1, seed: 91))
        let b = try backend.upload(Tensor.uniform([batch * k * n], in: -1...1, seed: 92))
        let bias = try backend.upload(Tensor.uniform([m], in: -1...1, seed: 93))
        let r = try backend.upload(Tensor.uniform([batch * m * n], in: -1...1, seed: 94))
        for (ta, tb) in [(false, false), (true, true)] {
            let c = try backend.allocate([batch * m * n])
            try backend.gemmLaunch(m: m, n: n, k: k, batch: batch,
                                   a: try backend.mem(a, "test"), aRow: ta ? 1 : k, aCol: ta ? m : 1, aBatch: m * k,
                                   b: try backend.mem(b, "test"), bRow: tb ? 1 : n, bCol: tb ? k : 1, bBatch: k * n,
                                   c: try backend.mem(c, "test"), ldc: n, cBatch: m * n, alpha: 0.75,
                                   bias: try backend.mem(bias, "test"), biasMode: 2, residual: try backend.mem(r, "test"), activation: .relu)
            out.append(try backend.download(c).scalars.map(\.bitPattern))
        }
        for (index, c) in ImplicitConvolutionTests.cases.enumerated() {
            let (f, g) = try ImplicitConvolutionTests.run(c, on: backend, seed: UInt64(10 * index + 300))
            out += [f.scalars.map(\.bitPattern), g.scalars.map(\.bitPattern)]
        }
        return out
    }

    /// The fp32 tiled kernels: every step of the issue's 128 x 128 x 8 layout's ladder (128/8 with
    /// sub-blocks, 64/4 with one, 32/2 and 16/1 without), convolutions implicit and im2col.
    func testEverySmallerTiledTileGivesTheBitsOfTheConfiguredOne() throws {
        _ = try TestBackends.requireOpenCL()
        let configured = try GEMMConfig(parsing: "tiled/ts128/wpt8/tk8/vw4/db/sb4/pf")
        let ladder = configured.shrinking
        XCTAssertEqual(ladder.map(\.description), ["tiled/ts128/wpt8/tk8/vw4/db/sb4/pf", "tiled/ts64/wpt4/tk8/vw4/db/sb4/pf",
                                                   "tiled/ts32/wpt2/tk8/vw4/db/pf", "tiled/ts16/wpt1/tk8/vw4/db/pf"])
        for config in ladder {
            XCTAssertNil(config.problem(maxWorkGroupSize: 256, localMemoryBytes: 32 << 10), "\(config)")
            XCTAssertEqual(config.workGroupSide, configured.workGroupSide, "\(config): the work-group keeps its shape")
        }
        XCTAssertEqual(GEMMConfig.rows.shrinking, [.rows])
        for lowering in [ConvolutionLowering.implicit, .im2col] {
            let backend = try OpenCLBackend(index: 0, gemm: configured, convolution: lowering)
            backend.reportsBuilds = true
            backend.tileChoice = .fixed(step: 0)
            let expected = try bits(backend)
            for step in 1..<ladder.count {
                backend.tileChoice = .fixed(step: step)
                XCTAssertEqual(try bits(backend), expected, "\(lowering): \(ladder[step]) against \(configured)")
                // The launches ran the step's own kernels (the kernel cache names the tile).
                XCTAssertTrue(backend.buildReports.contains { $0.contains("gemm.gemm_tiled (\(ladder[step]))") }, "\(ladder[step])")
                let conv = lowering == .implicit ? "gemm.conv_tiled_forward" : "gemm.gemm_tiled"
                XCTAssertTrue(backend.buildReports.contains { $0.contains("\(conv) (\(ladder[step]))") }, "\(lowering) \(ladder[step])")
                // ... built with the step's tile: the same shape of work-group and the configured
                // tile's blocks at each group would compute the same bits, at four times the work.
                let options = "-DTS=\(ladder[step].tile) -DWPT=\(ladder[step].workPerThread)"
                XCTAssertTrue(backend.buildReports.contains { $0.hasPrefix("[kernel build] gemm on") && $0.contains(options) }, "\(lowering): no program built with \(options)")
            }
        }
    }

    /// The tensor-core kernels (emulated here; the GPU check runs this class on the PTX too): every
    /// tiling of the ladder under tf32 and 3xtf32, convolutions implicit and im2col.
    func testEveryTensorCoreTilingGivesTheSameBits() throws {
        _ = try TestBackends.requireOpenCL()
        XCTAssertEqual(MMATiling.ladder.map(\.description), ["128x128", "64x64", "32x32"])
        for tiling in MMATiling.ladder {
            XCTAssertEqual(tiling.threads % tiling.blockColumns, 0, "\(tiling)")
            XCTAssertEqual(tiling.blockColumns * MMATiling.kSlice % tiling.threads, 0, "\(tiling)")
        }
        for arithmetic in [GEMMArithmetic.tf32, .tf32x3] {
            for lowering in [ConvolutionLowering.implicit, .im2col] {
                let native = try OpenCLBackend(index: 0, convolution: lowering, arithmetic: arithmetic)
                let emulated = try OpenCLBackend(index: 0, convolution: lowering, arithmetic: arithmetic, tensorCorePath: .emulated)
                for backend in [emulated] + (native.tensorCores?.path == .ptx ? [native] : []) {
                    let what = "\(arithmetic.rawValue) \(lowering) \(backend.tensorCores?.path.rawValue ?? "fp32")"
                    XCTAssertNotNil(backend.tensorCores, backend.tensorCoreNote)
                    backend.reportsBuilds = true
                    backend.tileChoice = .fixed(step: 0)
                    let expected = try bits(backend)
                    for step in 1..<MMATiling.ladder.count {
                        backend.tileChoice = .fixed(step: step)
                        XCTAssertEqual(try bits(backend), expected, "\(what): \(MMATiling.ladder[step]) against 128x128")
                        let conv = lowering == .implicit ? "mma.conv_mma_backward" : "mma.gemm_mma"
                        XCTAssertTrue(backend.buildReports.contains { $0.contains("\(conv) (mma \(MMATiling.ladder[step]))") }, "\(what) \(MMATiling.ladder[step])")
                    }
                }
            }
        }
    }

    /// The probe that decides whether a device's tensor cores are used builds and checks every
    /// tiling a launch may take, and leaves the backend's choice as it was.
    func testTheProbeChecksEveryTiling() throws {
        _ = try TestBackends.requireOpenCL()
        let backend = try OpenCLBackend(index: 0, arithmetic: .tf32, tensorCorePath: .emulated)
        let cores = try XCTUnwrap(backend.tensorCores, backend.tensorCoreNote)
        backend.reportsBuilds = true
        backend.tileChoice = .fill(units: 7)
        XCTAssertNil(backend.probe(cores))
        for tiling in MMATiling.ladder {
            XCTAssertTrue(backend.buildReports.contains { $0.contains("mma.gemm_mma (mma \(tiling))") }, "\(tiling) not probed")
        }
        XCTAssertEqual(backend.tileChoice, .fill(units: 7))
    }

    /// `.fill`: among the tiles that pad the GEMM least (within 5/4), the largest whose grid gives
    /// every compute unit a work-group, else the one with the most work-groups; on ResNet-50's
    /// layers as an H200 (132 compute units) sees them.
    func testFillTakesTheLargestLeanTileThatFillsTheDevice() throws {
        let fill = TileChoice.fill(units: 132)
        func mma(_ rows: Int, _ columns: Int, batch: Int = 1) -> String {
            fill.pick(MMATiling.ladder, rows: rows, columns: columns, batch: batch).description
        }
        XCTAssertEqual(mma(256, 32 * 56 * 56), "128x128", "batch 32, first stage's expansion: 1568 groups")
        XCTAssertEqual(mma(64, 32 * 56 * 56), "64x64", "64 channels: a 128-row tile would compute twice the rows")
        XCTAssertEqual(mma(147, 32 * 112 * 112), "64x64", "147 rows: 256 on 128-row tiles, 192 on 64, 160 on 32")
        XCTAssertEqual(mma(200, 16384), "128x128", "200 rows: 256 on 128-row tiles is within 5/4 of 224 on 32")
        XCTAssertEqual(mma(1024, 8 * 14 * 14), "64x64", "batch 8, third stage: 104 groups of 128, 400 of 64")
        XCTAssertEqual(mma(512, 7 * 7), "32x32", "batch 1, last stage: none fills, the most groups")
        XCTAssertEqual(mma(1000, 1), "32x32", "one column")
        XCTAssertEqual(mma(256, 40, batch: 200), "64x64", "40 columns: 128-wide blocks would compute 128 (400 groups fill, but pad)")
        XCTAssertEqual(mma(256, 66 * 128), "128x128", "exactly the units: 2 x 66")
        XCTAssertEqual(mma(256, 66 * 128 - 1), "128x128")
        XCTAssertEqual(mma(256, 65 * 128), "64x64", "one group short: 2 x 65")
        XCTAssertEqual(mma(128, 128, batch: 132), "128x128", "the batch axis counts")
        XCTAssertEqual(mma(128, 128, batch: 131), "64x64")
        let tiled = try GEMMConfig(parsing: "tiled/ts128/wpt8/tk8/vw4/db/sb4/pf").shrinking
        func fp32(_ rows: Int, _ columns: Int) -> Int { fill.pick(tiled, rows: rows, columns: columns, batch: 1).tile }
        XCTAssertEqual(fp32(2048, 32 * 49), 128, "16 x 13 = 208 groups")
        XCTAssertEqual(fp32(1024, 8 * 196), 64, "8 x 13 = 104 groups of 128, 16 x 25 = 400 of 64")
        XCTAssertEqual(fp32(512, 4 * 196), 32, "28 groups of 128, 104 of 64, 400 of 32")
        XCTAssertEqual(fp32(512, 49), 16, "128 groups of 16 (none fills), and 128-wide tiles pad 49 columns to 128")
        XCTAssertEqual(TileChoice.fixed(step: 1).pick(tiled, rows: 1, columns: 1, batch: 1).tile, 64)
        XCTAssertEqual(TileChoice.fixed(step: 9).pick(tiled, rows: 1, columns: 1, batch: 1).tile, 16, "past the ladder: its smallest")
        XCTAssertEqual(TileChoice.fixed(step: 0).pick(tiled, rows: 1, columns: 1, batch: 1).tile, 128, "off: the configured tile, padding or not")
    }

    /// `XAI_SMALL_TILES`: on by default on GPUs, off elsewhere; `on` and `off` force it; anything
    /// else is an error naming the variable.
    func testTheEnvironmentSwitch() throws {
        XCTAssertEqual(try TileChoice.initial(isGPU: true, computeUnits: 132, environment: [:]), .fill(units: 132))
        XCTAssertEqual(try TileChoice.initial(isGPU: false, computeUnits: 2, environment: [:]), .fixed(step: 0))
        XCTAssertEqual(try TileChoice.initial(isGPU: true, computeUnits: 132, environment: ["XAI_SMALL_TILES": "off"]), .fixed(step: 0))
        XCTAssertEqual(try TileChoice.initial(isGPU: false, computeUnits: 2, environment: ["XAI_SMALL_TILES": "ON"]), .fill(units: 2))
        XCTAssertEqual(try TileChoice.initial(isGPU: true, computeUnits: 0, environment: [:]), .fill(units: 1))
        XCTAssertThrowsError(try TileChoice.initial(isGPU: true, computeUnits: 132, environment: ["XAI_SMALL_TILES": "yes"])) { error in
            XCTAssertTrue("\(error)".contains("XAI_SMALL_TILES"), "\(error)")
        }
        _ = try TestBackends.requireOpenCL()
        let backend = try OpenCLBackend(index: 0, gemm: .baseline)
        backend.tileChoice = .fill(units: 132)
        XCTAssertTrue(backend.details.algorithms.contains("smaller tiles where a grid has fewer than 132 work-groups or a tile pads a small layer"), backend.details.algorithms)
        XCTAssertFalse(try OpenCLBackend(index: 0, gemm: .rows).details.algorithms.contains("tile"))
    }
}
