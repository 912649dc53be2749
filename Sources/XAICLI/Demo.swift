import ArgumentParser
import Foundation
import XAI
import XAIDemoData

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain the bundled demo model's sample images with every method, write the HTML report, and score each method by the pointing game.",
        discussion: """
        The demo model (trained by Tools/make_demo_model.py, built into the binary) tells circles, squares, triangles and \
        crosses apart on cluttered backgrounds. The samples come with their object masks, so the demo can say how often each \
        method's strongest pixel falls on the object (within 4 pixels, the pointing game's usual 15 pixels at 224 scaled \
        to 64): a first, honest quality figure. --folder runs another demo set of the same layout.
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
            let summary = try job.run()
            guard report(summary) else { throw ExitCode(1) }
            try pointingGame(demo: demo, methods: try MethodRegistry.expand(methods, model: try ExplainedModel(graph: try Models.load(model), backend: CPUBackend())))
        }
    }

    /// How often each method's peak lands on (or within a few pixels of) the object.
    func pointingGame(demo: String, methods names: [String]) throws {
        let samples = (demo as NSString).appendingPathComponent("samples"), masks = (demo as NSString).appendingPathComponent("masks")
        let stems = try FileManager.default.contentsOfDirectory(atPath: samples).filter { $0.hasSuffix(".png") }.map { String($0.dropLast(4)) }.sorted()
        let tolerance = 4
        print("\npointing game (\(stems.count) images; a hit is a peak within \(tolerance) pixels of the object):")
        for name in names {
            var hits = 0, total = 0
            for stem in stems {
                let mapPath = ((out as NSString).appendingPathComponent(stem) as NSString).appendingPathComponent("\(name).npy")
                guard let map = try? NPY.read(mapPath), map.shape.rank == 2 else { continue }
                let mask = try RGBImage.read((masks as NSString).appendingPathComponent(stem + ".png"))
                let (h, w) = (map.shape[0], map.shape[1])
                guard mask.width == w, mask.height == h else {
                    throw XAIError.shapeMismatch(op: "demo mask of \(stem)", expected: "the map's \(h)x\(w)", got: [Shape([mask.height, mask.width])])
                }
                guard let peak = map.scalars.indices.filter({ map.scalars[$0].isFinite }).max(by: { map.scalars[$0] < map.scalars[$1] }) else {
                    total += 1
                    continue
                }
                let (py, px) = (peak / w, peak % w)
                var hit = false
                for y in max(0, py - tolerance)...min(h - 1, py + tolerance) {
                    for x in max(0, px - tolerance)...min(w - 1, px + tolerance)
                    where (y - py) * (y - py) + (x - px) * (x - px) <= tolerance * tolerance && mask.pixels[(y * w + x) * 3] > 127 { hit = true }
                }
                hits += hit ? 1 : 0
                total += 1
            }
            guard total > 0 else { continue }
            print("  " + name.padding(toLength: 11, withPad: " ", startingAt: 0) + String(format: "%2d/%d  %5.1f %%", hits, total, 100 * Double(hits) / Double(total)))
        }
        print("\nopen \((out as NSString).appendingPathComponent("index.html")) in a browser to see the maps")
    }
}
