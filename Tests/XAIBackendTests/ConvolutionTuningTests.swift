import Foundation
import XCTest
import XAI
import XAITestSupport
@testable import XAICPU

/// The CPU's per-machine convolution table (`xai-bench tune --device cpu`): read under the `auto`
/// policy (`--fast`) only, per layer; a corrupt or foreign file is ignored with one warning.
final class ConvolutionTuningTests: XCTestCase {

    /// A forward-only 3x3 convolution takes Winograd under `auto` without a table, direct where
    /// this machine's table measured direct faster; exact passes and the direct policy ignore it.
    func testTheTableDecidesEachForwardOnlyLayerUnderAutoOnly() throws {
        guard CPUBackend().offersWinograd else { throw XCTSkip("oneDNN's Winograd needs AVX-512") }
        let params = Conv2DParams(strides: (1, 1), pads: (1, 1, 1, 1))
        let x = Tensor.uniform([2, 16, 12, 12], in: -1...1, seed: 3), w = Tensor.uniform([16, 16, 3, 3], in: -1...1, seed: 4)
        func conv(_ backend: CPUBackend, exact: Bool = false) throws -> [Float] {
            try backend.download(try backend.conv2d(try backend.upload(x), weight: try backend.upload(w), bias: nil, params: params,
                                                    activation: .identity, exact: exact)).scalars
        }
        let direct = try conv(CPUBackend(convolutionPolicy: .direct)), winograd = try conv(CPUBackend(convolutionPolicy: .winograd))
        XCTAssertNotEqual(direct, winograd, "Winograd rounds differently, so the test can tell them apart")
        let folder = try temporaryFolder()
        setenv("XAI_CACHE_DIR", folder, 1)
        defer { unsetenv("XAI_CACHE_DIR") }
        XCTAssertEqual(try conv(CPUBackend(convolutionPolicy: .auto)), winograd, "no table: Winograd wherever it applies")
        // The tuner records the layer and keys the table for this machine.
        let (measured, _) = try ConvolutionTuner.tune(repeats: 1) { recorder in _ = try conv(recorder) }
        let geometry = ConvolutionTuningTable.geometry(try ConvPlan(input: x.shape, weight: w.shape, bias: nil, params: params))
        XCTAssertEqual(Array(measured.choices.keys), [geometry])
        var table = measured
        table.choices[geometry] = .direct
        try table.store()
        let tuned = CPUBackend(convolutionPolicy: .auto)
        XCTAssertEqual(tuned.tuning, table)
        XCTAssertEqual(try conv(tuned), direct, "the table measured direct faster for this layer")
        XCTAssertTrue(tuned.details.algorithms.contains(table.key), tuned.details.algorithms)
        table.choices[geometry] = .winograd
        try table.store()
        XCTAssertEqual(try conv(CPUBackend(convolutionPolicy: .auto)), winograd)
        XCTAssertEqual(try conv(CPUBackend(convolutionPolicy: .auto), exact: true), direct, "an exact pass never reads the table")
        XCTAssertNil(CPUBackend(convolutionPolicy: .direct).tuning, "exact runs never read it")
    }

    /// A file that is not a list of tables, or holds none for this machine, is not applied; each
    /// says so once, naming the file.
    func testACorruptOrForeignTableIsIgnoredWithAWarning() throws {
        let folder = try temporaryFolder()
        let environment = ["XAI_CACHE_DIR": folder]
        let path = ConvolutionTuningTable.file(environment: environment)
        var warnings: [String] = []
        XCTAssertNil(ConvolutionTuningTable.load(key: "here", environment: environment) { warnings.append($0) })
        XCTAssertEqual(warnings, [], "no file: nothing to say")
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertNil(ConvolutionTuningTable.load(key: "here", environment: environment) { warnings.append($0) })
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].contains(path), warnings[0])
        let foreign = ConvolutionTuningTable(key: "another CPU | oneDNN 9.9", measured: "then", choices: ["x": .winograd])
        try foreign.store(environment: environment)
        XCTAssertNil(ConvolutionTuningTable.load(key: "here", environment: environment) { warnings.append($0) })
        XCTAssertEqual(warnings.count, 2)
        XCTAssertTrue(warnings[1].contains("another CPU") && warnings[1].contains(path), warnings[1])
        let mine = ConvolutionTuningTable(key: "here", measured: "now", choices: ["y": .direct])
        try mine.store(environment: environment)
        XCTAssertEqual(ConvolutionTuningTable.load(key: "here", environment: environment) { warnings.append($0) }, mine)
        XCTAssertEqual(warnings.count, 2, "a file holding this machine's table is read silently")
    }
}
