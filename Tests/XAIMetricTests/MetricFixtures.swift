import Foundation
import XCTest
import XAI
import XAITestSupport

/// The metric fixtures (Tools/make_metric_fixtures.py) and the model and images they were made on.
protocol MetricFixtures {}

extension MetricFixtures {
    var folder: String { fixturesDirectory + "/metrics" }
    var modelPath: String { fixturesDirectory + "/models/small_resnet/model.onnx" }

    func manifest() throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/manifest.json"))) as? [String: Any])
    }

    /// Map set `k` of the fixtures' maps.npy (or of another `[sets, 2, 64, 64]` file), `[2, 64, 64]`.
    func maps(_ k: Int, from path: String? = nil) throws -> Tensor {
        let all = try NPY.read(path ?? folder + "/maps.npy")
        let per = all.shape.count / all.shape[0]
        return Tensor(unchecked: Shape(Array(all.shape.dims.dropFirst())), Array(all.scalars[(k * per)..<((k + 1) * per)]))
    }

    /// The robustness fixtures' closed-form explanation, tanh(sum_c w_c x_c) `[1, H, W]` in
    /// float32, clipped at zero with `relu` (the Python scripts' `explanation`).
    func explanation(_ x: Tensor, _ w: Tensor, relu: Bool) -> Tensor {
        let (c, plane) = (x.shape[1], x.shape[2] * x.shape[3])
        let values = (0..<plane).map { p -> Float in
            var sum: Float = 0
            for k in 0..<c { sum += x.scalars[k * plane + p] * w.scalars[k * plane + p] }
            let e = tanh(sum)
            return relu ? max(e, 0) : e
        }
        return Tensor(unchecked: [1, x.shape[2], x.shape[3]], values)
    }

    var images: Tensor { get throws { try NPY.read(fixturesDirectory + "/models/small_resnet/input.npy") } }

    /// Prints the largest absolute and relative difference of (got, reference) pairs, so the test
    /// log states each fixture's agreement.
    func agreement(_ what: String, _ pairs: [(Double, Double)]) {
        let absolute = pairs.map { abs($0.0 - $0.1) }.max() ?? 0
        let relative = pairs.map { abs($0.0 - $0.1) / max(abs($0.1), 1e-12) }.max() ?? 0
        print(String(format: "agreement %@: max abs error %.2e, max rel error %.2e over %d values", what, absolute, relative, pairs.count))
    }
}
