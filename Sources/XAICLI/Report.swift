import Foundation
import XAI

/// Writes `index.html` beside `results.jsonl`: per image the picture, the explained class and
/// score, and every method's overlay with its time. Static, relative links only, so it opens
/// from disk; a record whose overlay is missing is listed without a picture.
func writeReport(folder: String, resultsPath: String) throws -> String {
    let text = (try? String(contentsOfFile: resultsPath, encoding: .utf8)) ?? ""
    let decoder = JSONDecoder()
    decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: nonFiniteJSON.positiveInfinity,
                                                                    negativeInfinity: nonFiniteJSON.negativeInfinity, nan: nonFiniteJSON.nan)
    var byStem: [String: [ResultRecord]] = [:], order: [String] = []
    for line in text.split(whereSeparator: \.isNewline) {
        guard let r = try? decoder.decode(ResultRecord.self, from: Data(line.utf8)) else { continue }
        if byStem[r.stem] == nil { order.append(r.stem) }
        // A re-run with --overwrite appends a newer record; keep the latest per method.
        byStem[r.stem, default: []].removeAll { $0.method == r.method }
        byStem[r.stem, default: []].append(r)
    }
    func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
    func exists(_ relative: String) -> Bool { FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent(relative)) }
    var html = """
    <!DOCTYPE html>
    <html><head><meta charset="utf-8"><title>xai report</title>
    <style>
    body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
    .image{border-top:1px solid #ccc;padding:1em 0}
    .grid{display:flex;flex-wrap:wrap;gap:12px}
    figure{margin:0;text-align:center;font-size:0.85em}
    figure img{width:200px;height:auto;image-rendering:auto;border:1px solid #ddd}
    .meta{color:#555;font-size:0.9em}
    </style></head><body>
    <h1>xai report</h1>
    <p class="meta">\(order.count) images, \(byStem.values.reduce(0) { $0 + $1.count }) maps. Each overlay shows the method's map on the picture; raw arrays are the .npy files beside it.</p>

    """
    for stem in order {
        let order = MethodRegistry.names
        let rank = { (m: String) in order.firstIndex(of: m) ?? order.count }
        guard let records = byStem[stem]?.sorted(by: { rank($0.method) < rank($1.method) }), let first = records.first else { continue }
        let label = first.label.map { " \(escape($0))" } ?? ""
        html += "<div class=\"image\"><h2>\(escape(stem))</h2>\n"
        html += "<p class=\"meta\">\(escape(first.image)) &middot; class \(first.target)\(label) &middot; score \(first.score.isFinite ? String(format: "%.4g", first.score) : "\(first.score)") &middot; \(escape(first.model)) on \(escape(first.device))</p>\n<div class=\"grid\">\n"
        let picture = "\(stem)/input.png"
        if exists(picture) { html += "<figure><img src=\"\(escape(picture))\" alt=\"input\"><figcaption>input</figcaption></figure>\n" }
        for r in records {
            let overlay = "\(stem)/\(r.method).png"
            let time = !r.seconds.isFinite ? "" : r.seconds >= 1 ? String(format: "%.2f s", r.seconds) : String(format: "%.0f ms", r.seconds * 1000)
            let image = exists(overlay) ? "<img src=\"\(escape(overlay))\" alt=\"\(escape(r.method))\">" : "<div>(no overlay)</div>"
            html += "<figure>\(image)<figcaption>\(escape(r.method)) &middot; \(time)</figcaption></figure>\n"
        }
        html += "</div></div>\n"
    }
    html += "</body></html>\n"
    let path = (folder as NSString).appendingPathComponent("index.html")
    try html.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}
