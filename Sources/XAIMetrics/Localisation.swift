import Foundation
import XAICore

/// Metrics against ground-truth masks (`[N, H, W]`, non-zero inside the object). An empty mask
/// gives NaN (not a hit, not a miss).
public enum Localisation {
    static func check(_ masks: Tensor, _ maps: Tensor, _ images: Tensor, _ metric: String) throws -> (n: Int, h: Int, w: Int) {
        let (n, h, w) = try checkMaps(maps, for: images, metric: metric)
        guard masks.shape.count == n * h * w, masks.shape.rank >= 2, Array(masks.shape.dims.suffix(2)) == [h, w] else {
            throw XAIError.shapeMismatch(op: metric, expected: "masks [\(n), \(h), \(w)] (one per image, at the input's size)", got: [masks.shape])
        }
        return (n, h, w)
    }

    /// The pointing game (Zhang et al. 2018): a hit when a pixel holding the map's maximum (any
    /// of them, when several tie, as Quantus) lies inside the mask or within `tolerance` pixels of
    /// it (default: 15 at 224, scaled to the image's shorter side, the protocol's 15 px at 224).
    /// Higher is better.
    public static func pointingGame(images: Tensor, maps: Tensor, masks: Tensor, tolerance: Int? = nil) throws -> MetricResult {
        let (n, h, w) = try check(masks, maps, images, "pointing_game")
        let radius = tolerance ?? Int((15 * Double(min(h, w)) / 224).rounded())
        guard radius >= 0 else { throw XAIError.invalidArgument(parameter: "tolerance", value: "\(radius)", reason: "must not be negative") }
        let scores = (0..<n).map { b -> Double in
            let m = Array(mapValues(masks, b, pixels: h * w)), a = Array(mapValues(maps, b, pixels: h * w))
            guard m.contains(where: { $0 != 0 }), let top = a.max() else { return .nan }
            for p in a.indices where a[p] == top {
                let (py, px) = (p / w, p % w)
                for y in max(0, py - radius)...min(h - 1, py + radius) {
                    for x in max(0, px - radius)...min(w - 1, px + radius)
                    where (y - py) * (y - py) + (x - px) * (x - px) <= radius * radius && m[y * w + x] != 0 { return 1 }
                }
            }
            return 0
        }
        return MetricResult(metric: "pointing_game", direction: .higherIsBetter, scores: scores,
                            settings: ["tolerance": "\(radius) px", "ties": "a hit when any maximum is within the tolerance"])
    }

    /// Relevance mass (Arras et al. 2022): the positive attribution inside the mask over all
    /// positive attribution. (Quantus 0.6's `RelevanceMassAccuracy` sums the raw map, which equals
    /// this for non-negative maps.) NaN where the map has no positive value. Higher is better.
    public static func relevanceMass(images: Tensor, maps: Tensor, masks: Tensor) throws -> MetricResult {
        let (n, h, w) = try check(masks, maps, images, "relevance_mass")
        let scores = (0..<n).map { b -> Double in
            let m = Array(mapValues(masks, b, pixels: h * w)), a = Array(mapValues(maps, b, pixels: h * w))
            guard m.contains(where: { $0 != 0 }) else { return .nan }
            var inside = 0.0, total = 0.0
            for i in a.indices where a[i] > 0 {
                total += Double(a[i])
                if m[i] != 0 { inside += Double(a[i]) }
            }
            return total > 0 ? inside / total : .nan
        }
        return MetricResult(metric: "relevance_mass", direction: .higherIsBetter, scores: scores,
                            settings: ["definition": "positive attribution inside the mask / all positive attribution"])
    }

    /// Attribution localisation (Kohlbrenner et al. 2020, "Towards best practice in explaining
    /// neural network decisions with LRP"), as Quantus 0.6.0's `AttributionLocalisation` at its
    /// defaults: the share of the map's magnitude inside the mask, `sum_mask |a| / (sum |a| +
    /// 1e-9)` with `a` the map over its largest magnitude. Unlike relevance mass, negative
    /// attribution counts by its size. (Quantus's `weighted` variant is left out: it weighs by the
    /// mask's share of the batch rather than of the image.) NaN for an empty mask. Higher is better.
    public static func attributionLocalisation(images: Tensor, maps: Tensor, masks: Tensor) throws -> MetricResult {
        let (n, h, w) = try check(masks, maps, images, "attribution_localisation")
        let scores = (0..<n).map { b -> Double in
            let m = Array(mapValues(masks, b, pixels: h * w)), a = Array(mapValues(maps, b, pixels: h * w))
            guard m.contains(where: { $0 != 0 }) else { return .nan }
            let largest = a.reduce(0.0) { max($0, abs(Double($1))) }
            var inside = 0.0, total = 0.0
            for i in a.indices {
                let v = largest > 0 ? abs(Double(a[i])) / largest : 0
                total += v
                if m[i] != 0 { inside += v }
            }
            return inside / (total + 1e-9)
        }
        return MetricResult(metric: "attribution_localisation", direction: .higherIsBetter, scores: scores,
                            settings: ["definition": "sum of |map| / max |map| inside the mask over its sum everywhere (+ 1e-9)"])
    }

    /// The area under the ROC curve of the map as a detector of the mask's pixels (Fawcett 2006, as
    /// Quantus 0.6's `AUC`: scikit-learn's `roc_curve` and `auc`): the chance that a pixel inside
    /// the mask outscores one outside, ties counting one half, from the pixels' mid-ranks in
    /// float64 (the Mann-Whitney statistic, equal to scikit-learn's trapezoid over tied
    /// thresholds). 0.5 is chance, 1 a map that ranks every object pixel first. NaN for an empty
    /// mask or one that covers the image (no curve). Higher is better.
    public static func rocAUC(images: Tensor, maps: Tensor, masks: Tensor) throws -> MetricResult {
        let (n, h, w) = try check(masks, maps, images, "roc_auc")
        let scores = (0..<n).map { b -> Double in
            let m = Array(mapValues(masks, b, pixels: h * w)), a = Array(mapValues(maps, b, pixels: h * w))
            let positives = m.filter { $0 != 0 }.count, negatives = m.count - positives
            guard positives > 0, negatives > 0 else { return .nan }
            let order = a.indices.sorted { a[$0] < a[$1] }
            var rankSum = 0.0, start = 0
            while start < order.count {
                var end = start
                while end + 1 < order.count, a[order[end + 1]] == a[order[start]] { end += 1 }
                // Places start...end tie: each takes their mean rank (1-based).
                let rank = Double(start + end) / 2 + 1
                for i in start...end where m[order[i]] != 0 { rankSum += rank }
                start = end + 1
            }
            let p = Double(positives)
            return (rankSum - p * (p + 1) / 2) / (p * Double(negatives))
        }
        return MetricResult(metric: "roc_auc", direction: .higherIsBetter, scores: scores,
                            settings: ["definition": "area under the ROC curve of the map as a detector of the mask's pixels", "ties": "one half (mid-ranks)"])
    }

    /// The top-K intersection (Theiner, Müller-Budack & Ewerth 2022, "Interpretable semantic photo
    /// geolocation", as Quantus 0.6's `TopKIntersection`): of the `k` highest-attributed pixels
    /// (ties by pixel index), the share inside the mask. `k` defaults to Quantus's 1000 at 224x224,
    /// scaled to the image's pixels. Unlike relevance rank, `k` does not follow the mask's size.
    /// NaN for an empty mask. Higher is better.
    public static func topKIntersection(images: Tensor, maps: Tensor, masks: Tensor, k: Int? = nil) throws -> MetricResult {
        let (n, h, w) = try check(masks, maps, images, "top_k_intersection")
        let count = k ?? max(1, Int((1000 * Double(h * w) / 50176).rounded()))
        guard count >= 1, count <= h * w else {
            throw XAIError.invalidArgument(parameter: "k", value: "\(count)", reason: "must be between 1 and the image's \(h * w) pixels")
        }
        let scores = (0..<n).map { b -> Double in
            let m = Array(mapValues(masks, b, pixels: h * w)), a = Array(mapValues(maps, b, pixels: h * w))
            guard m.contains(where: { $0 != 0 }) else { return .nan }
            let top = a.indices.sorted { a[$0] != a[$1] ? a[$0] > a[$1] : $0 < $1 }.prefix(count)
            return Double(top.filter { m[$0] != 0 }.count) / Double(count)
        }
        return MetricResult(metric: "top_k_intersection", direction: .higherIsBetter, scores: scores,
                            settings: ["k": "\(count)", "definition": "share of the top-k pixels inside the mask", "ties": "by pixel index"])
    }

    /// Relevance rank (Arras et al. 2022): of the K highest-attributed pixels, K the mask's size,
    /// the share inside the mask (ties broken by pixel index, as a stable sort). Higher is better.
    public static func relevanceRank(images: Tensor, maps: Tensor, masks: Tensor) throws -> MetricResult {
        let (n, h, w) = try check(masks, maps, images, "relevance_rank")
        let scores = (0..<n).map { b -> Double in
            let m = Array(mapValues(masks, b, pixels: h * w)), a = Array(mapValues(maps, b, pixels: h * w))
            let k = m.filter { $0 != 0 }.count
            guard k > 0 else { return .nan }
            let top = a.indices.sorted { a[$0] != a[$1] ? a[$0] > a[$1] : $0 < $1 }.prefix(k)
            return Double(top.filter { m[$0] != 0 }.count) / Double(k)
        }
        return MetricResult(metric: "relevance_rank", direction: .higherIsBetter, scores: scores,
                            settings: ["definition": "share of the top-K pixels inside the mask, K = mask size", "ties": "by pixel index"])
    }
}
