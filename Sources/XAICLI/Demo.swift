import ArgumentParser
import Foundation
import XAI
import XAIJobs
import XAIDemoData

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain the bundled demo model's sample images with every method, write the HTML report, and score each method (pointing game, relevance mass, deletion, insertion).",
        discussion: """
        The demo model (trained by Tools/make_demo_model.py, built into the binary) tells circles, squares, triangles and \
        crosses apart on cluttered backgrounds. The samples come with their object masks, so the demo can say how often each \
        method's strongest pixel falls on the object (within 4 pixels, the pointing game's usual 15 pixels at 224 scaled \
        to 64), how much of its positive attribution lies on the object, and how fast the class probability falls as the \
        pixels it ranks first are deleted (and rises as they are inserted into a blurred copy): the table `xai evaluate` \
        prints, also in OUT/metrics.jsonl. --folder runs another demo set of the same layout.
        """)

    @Option(help: "A demo folder (model.onnx, model.json, samples/, masks/) instead of the built-in one.") var folder: String?
    @Option(help: "Output folder.") var out = "xai-demo"
    @Option(help: "cpu, gpu or gpu:N.") var device = "cpu"
    @Option(name: .customLong("method"), help: "Comma-separated methods, or all.") var methods = "all"
    @Flag(help: "Recompute maps that already exist.") var overwrite = false
    @Flag(help: "No progress line.") var quiet = false

    func run() throws {
        try reportingFlags {
            // The built-in set is written next to the outputs, so the report's links and the
            // results' paths stay valid after the run.
            let demo = try folder ?? EmbeddedDemo.write(to: (out as NSString).appendingPathComponent(".demo"))
            let model = (demo as NSString).appendingPathComponent("model.onnx")
            let samples = (demo as NSString).appendingPathComponent("samples")
            var job = ExplainJob(model: model, inputs: [samples], methods: methods, out: out)
            job.device = try Device(parsing: device)
            job.overwrite = overwrite
            job.quiet = quiet
            job.describeError = describe
            let summary = try job.run()
            guard report(summary) else { throw ExitCode(1) }
            // How well each method's maps find the object and keep the prediction: the samples
            // come with their object masks.
            var evaluation = EvaluateJob(model: model, inputs: [samples], methods: methods, metrics: "pointing_game,relevance_mass,deletion,insertion",
                                         masks: (demo as NSString).appendingPathComponent("masks"), out: out)
            evaluation.device = job.device
            evaluation.quiet = quiet
            evaluation.describeError = describe
            let scores = try evaluation.run()
            print("\nmetrics over the samples (pointing game: a peak within 4 pixels of the object; relevance mass: the share of positive")
            print("attribution on the object; deletion/insertion: area under the class probability as pixels go, most important first):")
            printMetricTable(scores)
            print("\nopen \((out as NSString).appendingPathComponent("index.html")) in a browser to see the maps")
        }
    }
}
