import Foundation
import XAI

/// Writes `index.html` beside `results.jsonl`: per image the picture, the explained class and
/// score, and every method's overlay with its time. Static, relative links only, so it opens
/// from disk; a record whose overlay is missing is listed without a picture. Where `xai evaluate`
/// wrote `metrics.jsonl` in the folder, the report opens with the scores: a table of method x
/// metric (mean +- standard error, best per column marked, arrows for the direction) and the mean
/// deletion and insertion curves per method as inline SVG; each overlay's caption lists its
/// image's scores.
public func writeReport(folder: String, resultsPath: String) throws -> String {
    let text = (try? String(contentsOfFile: resultsPath, encoding: .utf8)) ?? ""
    let decoder = jsonLinesDecoder()
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
    let metrics = readMetricRecords((folder as NSString).appendingPathComponent("metrics.jsonl"))
    var html = """
    <!DOCTYPE html>
    <html><head><meta charset="utf-8"><title>xai report</title>
    <style>
    body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
    .image{border-top:1px solid #ccc;padding:1em 0}
    .grid{display:flex;flex-wrap:wrap;gap:12px}
    figure{margin:0;text-align:center;font-size:0.85em;width:200px}
    figure img{width:200px;height:auto;image-rendering:auto;border:1px solid #ddd}
    .meta{color:#555;font-size:0.9em}
    table.scores{border-collapse:collapse;font-size:0.9em;margin:0.5em 0}
    table.scores th,table.scores td{border:1px solid #ccc;padding:3px 8px;text-align:right}
    table.scores th:first-child,table.scores td:first-child{text-align:left}
    table.scores td.best{font-weight:bold;background:#eef6e8}
    .scores-line{color:#555;font-size:0.85em}
    svg.curve{background:#fafafa;border:1px solid #ddd;width:180px}
    </style></head><body>
    <h1>xai report</h1>
    <p class="meta">\(order.count) images, \(byStem.values.reduce(0) { $0 + $1.count }) maps. Each overlay shows the method's map on the picture; raw arrays are the .npy files beside it.</p>

    """
    // What computed the maps (each line of results.jsonl records it; runs appended to one folder may differ).
    let provenances = byStem.values.flatMap { $0 }.compactMap(\.provenance).reduce(into: [Provenance]()) { if !$0.contains($1) { $0.append($1) } }
    for p in provenances { html += "<p class=\"meta\">Computed by \(escape(p.summary)).</p>\n" }
    html += metricsSection(metrics, escape: escape)
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
            let scores = metrics.filter { $0.stem == stem && $0.method == r.method }
                .map { "\($0.metric.replacingOccurrences(of: "_", with: " ")) \($0.score.isFinite ? String(format: "%.3f", $0.score) : "nan")" }
            let line = scores.isEmpty ? "" : "<br><span class=\"scores-line\">\(escape(scores.joined(separator: " · ")))</span>"
            html += "<figure>\(image)<figcaption>\(escape(r.method)) &middot; \(time)\(line)</figcaption></figure>\n"
        }
        html += "</div></div>\n"
    }
    html += "</body></html>\n"
    let path = (folder as NSString).appendingPathComponent("index.html")
    try FileSystem.write(Data(html.utf8), to: path)
    return path
}

/// The latest line per image x method x metric of `metrics.jsonl` (a re-run appends), in file
/// order; none where the file is missing. Lines that do not parse are skipped.
func readMetricRecords(_ path: String) -> [MetricRecord] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    let decoder = jsonLinesDecoder()
    var records: [MetricRecord] = []
    for line in text.split(whereSeparator: \.isNewline) {
        guard let r = try? decoder.decode(MetricRecord.self, from: Data(line.utf8)) else { continue }
        records.removeAll { $0.stem == r.stem && $0.method == r.method && $0.metric == r.metric }
        records.append(r)
    }
    return records
}

/// The report's scores: the method x metric table and the deletion/insertion curves.
func metricsSection(_ records: [MetricRecord], escape: (String) -> String) -> String {
    var grouped: [(method: String, metric: String, values: [Double])] = []
    for r in records {
        guard MetricRegistry.names.contains(r.metric) else { continue }
        let metric = r.metric
        if let i = grouped.firstIndex(where: { $0.method == r.method && $0.metric == metric }) {
            grouped[i].values.append(r.score)
        } else {
            grouped.append((r.method, metric, [r.score]))
        }
    }
    let table = MetricTable(grouped)
    guard !table.metrics.isEmpty else { return "" }
    let images = Set(records.map(\.stem)).count
    var html = "<h2>Scores</h2>\n<p class=\"meta\">\(images) images, from metrics.jsonl (xai evaluate). Mean &plusmn; standard error over images, "
        + "(n) images with a defined score; &uarr; higher is better, &darr; lower is better; the best method per column is in bold.</p>\n"
    html += "<table class=\"scores\"><tr><th>method</th>"
        + table.metrics.map { "<th>\(escape($0)) \(MetricTable.direction($0) == .lowerIsBetter ? "&darr;" : "&uarr;")</th>" }.joined() + "</tr>\n"
    for method in table.methods {
        html += "<tr><td>\(escape(method))</td>"
        for metric in table.metrics {
            guard let s = table.cell(method, metric) else { html += "<td>-</td>"; continue }
            let text = MetricTable.text(s).replacingOccurrences(of: " +- ", with: " &plusmn; ")
            html += table.best[metric] == method ? "<td class=\"best\">\(text)</td>" : "<td>\(text)</td>"
        }
        html += "</tr>\n"
    }
    html += "</table>\n"
    for mode in ["deletion", "insertion"] {
        let curves = records.filter { $0.metric == mode && $0.curve != nil }
        guard !curves.isEmpty else { continue }
        html += "<h3>\(mode) curves</h3>\n<p class=\"meta\">Softmax probability of the explained class as pixels are "
            + (mode == "deletion" ? "removed, most important first (a faster fall is better)" : "put back into the blurred image, most important first (a faster rise is better)")
            + "; the mean over images, x the share of pixels changed.</p>\n<div class=\"grid\">\n"
        for method in table.methods {
            let mine = curves.filter { $0.method == method }.compactMap(\.curve)
            // Curves of the most common length (one --step per run; a mixed file keeps the majority).
            let counts = Dictionary(grouping: mine, by: \.count)
            guard let length = counts.max(by: { $0.value.count < $1.value.count })?.key, length > 1, let same = counts[length] else { continue }
            let mean = (0..<length).map { i in same.reduce(0.0) { $0 + ($1[i].isFinite ? $1[i] : 0) } / Double(same.count) }
            html += "<figure>\(curveSVG(mean))<figcaption>\(escape(method)) &middot; area \(String(format: "%.3f", PixelCurve.area(mean)))</figcaption></figure>\n"
        }
        html += "</div>\n"
    }
    return html
}

/// A curve over [0, 1] x [0, 1] as a small inline SVG: axes, the area shaded, the line.
func curveSVG(_ values: [Double], width: Int = 180, height: Int = 110) -> String {
    let (left, bottom, top, right) = (24.0, 16.0, 6.0, 6.0)
    let w = Double(width) - left - right, h = Double(height) - top - bottom
    let points = values.enumerated().map { i, v -> String in
        let x = left + w * Double(i) / Double(max(values.count - 1, 1)), y = top + h * (1 - min(max(v.isFinite ? v : 0, 0), 1))
        return String(format: "%.1f,%.1f", x, y)
    }
    let base = String(format: "%.1f", top + h)
    return "<svg class=\"curve\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" xmlns=\"http://www.w3.org/2000/svg\">"
        + "<polygon points=\"\(String(format: "%.1f", left)),\(base) \(points.joined(separator: " ")) \(String(format: "%.1f", left + w)),\(base)\" fill=\"#9ecae1\" opacity=\"0.5\"/>"
        + "<polyline points=\"\(points.joined(separator: " "))\" fill=\"none\" stroke=\"#08519c\" stroke-width=\"1.5\"/>"
        + "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(base)\" stroke=\"#444\"/><line x1=\"\(left)\" y1=\"\(base)\" x2=\"\(left + w)\" y2=\"\(base)\" stroke=\"#444\"/>"
        + "<text x=\"2\" y=\"\(top + 8)\" font-size=\"9\">1</text><text x=\"2\" y=\"\(base)\" font-size=\"9\">0</text>"
        + "<text x=\"\(left + w - 6)\" y=\"\(Double(height) - 3)\" font-size=\"9\">1</text></svg>"
}
