import ArgumentParser
import Foundation
import XAI
import XAIJobs

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the top-K classes of each image (the first check that a model loaded right).")

    @Argument(help: "An ONNX file or a zoo model name.") var model: String
    @Argument(help: "Images (PNG, JPEG), preprocessed tensors (.npy), folders or .txt manifests.") var inputs: [String]
    @Option(help: "Classes to print per image.") var top = 5
    @Option(help: "cpu, gpu or gpu:N.") var device = "cpu"
    @Option(help: "Write each image's logits as <image-stem>.logits.npy into this folder.") var saveLogits: String?
    @Option(help: "Normalisation: imagenet, none or r,g,b/r,g,b (default: the model's .json sidecar, else imagenet).") var preset: String?
    @Option(help: "Shorter side after resizing, before the centre crop.") var resize: Int?

    func run() throws {
        let failed = try reportingFlags { try predict() }
        if failed > 0 { throw ExitCode(1) }
    }

    /// Prints every image's top classes; returns how many inputs failed.
    func predict() throws -> Int {
        guard top >= 1 else { throw XAIError.invalidArgument(parameter: "top", value: "\(top)", reason: "must be at least 1") }
        let session = try Session(model, device: try Device(parsing: device), preset: preset, resize: resize)
        if let saveLogits { try FileSystem.createDirectory(saveLogits) }
        var failed = 0
        for file in try collectInputs(inputs, shard: nil) {
            do {
                for image in try session.prepare(file) {
                    let logits = try session.model.logits(try session.backend.upload(image.tensor))
                    let probabilities = ExplainedModel.probabilities(logits.scalars)
                    let nonFinite = logits.nonFiniteCount
                    print("\(image.stem):" + (nonFinite > 0 ? "  (warning: \(nonFinite) logits are NaN or infinite)" : ""))
                    let best = logits.scalars.indices.sorted { a, b in
                        let (x, y) = (logits.scalars[a], logits.scalars[b])
                        return x.isNaN ? false : (y.isNaN ? true : x > y)
                    }.prefix(top)
                    for c in best {
                        let label = session.label(c).map { "  \($0)" } ?? ""
                        print(String(format: "  %5d  p %.4f  logit %8.4f", c, probabilities[c], logits.scalars[c]) + label)
                    }
                    if let saveLogits { try NPY.write(logits, to: (saveLogits as NSString).appendingPathComponent("\(image.stem).logits.npy")) }
                }
            } catch {
                printError("error: \(describe(error))")
                failed += 1
            }
        }
        return failed
    }
}
