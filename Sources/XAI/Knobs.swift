import Foundation

/// One knob: its name (the registry's, the C ABI's and Python's; the command line spells it as a
/// flag, `untilStable` as `--until-stable`, and Python as `until_stable`), type, range and meaning.
public struct Knob: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case integer, number, string, boolean
    }

    public let name: String
    public let kind: Kind
    public let summary: String
    public let minimum: Double?
    public let maximum: Double?
    /// The values a string knob takes, where it is one of a few.
    public let choices: [String]?

    init(_ name: String, _ kind: Kind, _ summary: String, minimum: Double? = nil, maximum: Double? = nil, choices: [String]? = nil) {
        self.name = name
        self.kind = kind
        self.summary = summary
        self.minimum = minimum
        self.maximum = maximum
        self.choices = choices
    }

    /// The same knob with a narrower range (a method that takes fewer samples than the knob allows).
    func limited(to range: ClosedRange<Int>?) -> Knob {
        guard let range else { return self }
        return Knob(name, kind, summary, minimum: Double(range.lowerBound), maximum: Double(range.upperBound), choices: choices)
    }

    /// The knob as JSON, with `defaultValue` where it has one.
    public func json(defaultValue: Any?) -> [String: Any] {
        var o: [String: Any] = ["name": name, "type": kind.rawValue, "summary": summary]
        if let defaultValue { o["default"] = defaultValue }
        if let minimum { o["minimum"] = minimum }
        if let maximum { o["maximum"] = maximum }
        if let choices { o["choices"] = choices }
        return o
    }

    /// Checks a value against the range and choices.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` naming the knob.
    func check(_ value: Any) throws {
        if let v = JSONScalar.number(value), kind == .integer || kind == .number {
            let range = [minimum.map { ">= \(Self.text($0))" }, maximum.map { "<= \(Self.text($0))" }].compactMap { $0 }.joined(separator: " and ")
            guard v.isFinite, minimum.map({ v >= $0 }) ?? true, maximum.map({ v <= $0 }) ?? true else {
                throw XAIError.invalidArgument(parameter: name, value: "\(value)", reason: "must be \(range.isEmpty ? "finite" : range)")
            }
        } else if let text = value as? String, let choices {
            guard choices.contains(text) else {
                throw XAIError.invalidArgument(parameter: name, value: text, reason: "none of \(choices.joined(separator: ", "))")
            }
        }
    }

    private static func text(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? "\(Int(v))" : "\(v)" }
}

/// A knob bound to the property of a configuration that holds it: the one place a knob is
/// declared. Reading, writing from JSON or a flag, range checks, the recorded settings and the
/// listings all go through these.
public struct KnobField<Root>: @unchecked Sendable {
    public let knob: Knob
    /// The value as JSON takes it (`nil` where unset).
    let get: (Root) -> Any?
    /// The value as Swift prints it (`0.15` for a Float knob, where JSON's double says more digits).
    let text: (Root) -> String?
    /// Sets the value from JSON or a Swift value of the property's type; `nil` unsets an optional
    /// knob and keeps a required one.
    let set: (inout Root, Any?) throws -> Void

    private static func mismatch(_ knob: Knob, _ value: Any) -> XAIError {
        .invalidArgument(parameter: knob.name, value: "\(value)", reason: "must be \(knob.kind == .integer ? "an integer" : knob.kind == .number ? "a number" : knob.kind == .boolean ? "true or false" : "a string")")
    }

    private static func field<T>(_ path: WritableKeyPath<Root, T>, _ knob: Knob, convert: @escaping (Any) -> T?, json: @escaping (T) -> Any?) -> KnobField {
        KnobField(knob: knob, get: { json($0[keyPath: path]) }, text: { "\($0[keyPath: path])" }, set: { root, value in
            guard let value = JSONScalar.unwrapped(value) else { return }
            guard let v = convert(value) else { throw mismatch(knob, value) }
            root[keyPath: path] = v
        })
    }

    private static func optional<T>(_ path: WritableKeyPath<Root, T?>, _ knob: Knob, convert: @escaping (Any) -> T?, json: @escaping (T) -> Any?) -> KnobField {
        KnobField(knob: knob, get: { $0[keyPath: path].flatMap(json) }, text: { $0[keyPath: path].map { "\($0)" } }, set: { root, value in
            guard let value = JSONScalar.unwrapped(value) else { root[keyPath: path] = nil; return }
            guard let v = convert(value) else { throw mismatch(knob, value) }
            root[keyPath: path] = v
        })
    }

    static func integer(_ path: WritableKeyPath<Root, Int>, _ knob: Knob) -> KnobField { field(path, knob, convert: JSONScalar.integer, json: { $0 }) }
    static func integer(_ path: WritableKeyPath<Root, Int?>, _ knob: Knob) -> KnobField { optional(path, knob, convert: JSONScalar.integer, json: { $0 }) }
    static func seed(_ path: WritableKeyPath<Root, UInt64>, _ knob: Knob) -> KnobField {
        field(path, knob, convert: { JSONScalar.integer($0).flatMap { $0 >= 0 ? UInt64($0) : nil } ?? ($0 as? UInt64) }, json: { $0 })
    }
    static func number(_ path: WritableKeyPath<Root, Double?>, _ knob: Knob) -> KnobField { optional(path, knob, convert: JSONScalar.number, json: { $0 }) }
    static func number(_ path: WritableKeyPath<Root, Float>, _ knob: Knob) -> KnobField {
        field(path, knob, convert: { JSONScalar.number($0).map(Float.init) }, json: { Double($0) })
    }
    static func string(_ path: WritableKeyPath<Root, String>, _ knob: Knob) -> KnobField { field(path, knob, convert: { $0 as? String }, json: { $0 }) }
    static func string(_ path: WritableKeyPath<Root, String?>, _ knob: Knob) -> KnobField { optional(path, knob, convert: { $0 as? String }, json: { $0 }) }
    static func boolean(_ path: WritableKeyPath<Root, Bool>, _ knob: Knob) -> KnobField { field(path, knob, convert: JSONScalar.boolean, json: { $0 }) }
}

/// A set of knobs with defaults: the methods' (``MethodConfiguration``) and the metrics'
/// (``MetricConfiguration``).
public protocol KnobConfiguration: Sendable {
    init()
    /// Every knob, bound to its property, in the order listings show them.
    static var fields: [KnobField<Self>] { get }
}

extension KnobConfiguration {
    /// Every knob with its type, range and meaning.
    public static var knobs: [Knob] { fields.map(\.knob) }

    /// Every knob's name.
    public static var knobNames: [String] { fields.map(\.knob.name) }

    /// The knob called `name`.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` naming an unknown knob.
    public static func knob(_ name: String) throws -> Knob { try field(name).knob }

    static func field(_ name: String) throws -> KnobField<Self> {
        guard let f = fields.first(where: { $0.knob.name == name }) else {
            throw XAIError.invalidArgument(parameter: name, value: "", reason: "not a knob (knobs: \(knobNames.joined(separator: ", ")))")
        }
        return f
    }

    /// The knobs' values as JSON values by name (absent where a knob is unset, like `layer`).
    public var values: [String: Any] {
        var o: [String: Any] = [:]
        for f in Self.fields { if let v = f.get(self) { o[f.knob.name] = v } }
        return o
    }

    /// The value of knob `name` (`nil` where unset or unknown).
    public func value(_ name: String) -> Any? { (try? Self.field(name))?.get(self) }

    /// The value of knob `name` as text, for recorded settings (`nil` where unset or unknown).
    public func text(_ name: String) -> String? { (try? Self.field(name))?.text(self) }

    /// The default of every knob that has one, as JSON values.
    public static var defaults: [String: Any] { Self().values }

    /// Sets knob `name` from a JSON value or a Swift value of its type (`nil` unsets an optional knob).
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` for an unknown knob or a value of the wrong type.
    public mutating func set(_ name: String, _ value: Any?) throws {
        try Self.field(name).set(&self, value)
    }

    /// Checks the knobs `names` against their ranges and choices, a knob's range narrowed where
    /// `ranges` gives one (the method that reads it takes less).
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` naming the first knob out of range.
    public func validate(_ names: [String], ranges: [String: ClosedRange<Int>] = [:]) throws {
        for name in names {
            let f = try Self.field(name)
            guard let value = f.get(self) else { continue }
            try f.knob.limited(to: ranges[name]).check(value)
        }
    }

    /// A configuration from a JSON object of knobs (`{"steps": 32, "rule": "middle"}`); a missing
    /// key keeps its default.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` naming the unknown or
    ///   mistyped knob, or the malformed text.
    public static func parse(json: Data) throws -> Self {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: json, options: [.fragmentsAllowed])
        } catch {
            throw XAIError.invalidArgument(parameter: "configuration", value: String(decoding: json.prefix(80), as: UTF8.self),
                                           reason: "not JSON: \(error.localizedDescription)")
        }
        guard let dictionary = object as? [String: Any] else {
            throw XAIError.invalidArgument(parameter: "configuration", value: String(decoding: json.prefix(80), as: UTF8.self), reason: "not a JSON object of knobs")
        }
        return try parse(dictionary)
    }

    /// A configuration from knob values by name.
    public static func parse(_ dictionary: [String: Any]) throws -> Self {
        var c = Self()
        for key in dictionary.keys.sorted() { try c.set(key, dictionary[key]) }
        return c
    }
}

/// Values as JSONSerialization gives them (NSNumber, where booleans are a kind of number) and as
/// Swift holds them, read by type.
enum JSONScalar {
    /// `nil` for `nil`, `NSNull` and an empty optional.
    static func unwrapped(_ value: Any?) -> Any? {
        guard let value, !(value is NSNull) else { return nil }
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional { return mirror.children.first.map { $0.value } }
        return value
    }

    private static func isBoolean(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    static func boolean(_ value: Any) -> Bool? {
        if type(of: value) == Bool.self { return value as? Bool }
        if type(of: value) != Int.self, type(of: value) != Double.self, let n = value as? NSNumber, isBoolean(n) { return n.boolValue }
        return nil
    }

    static func number(_ value: Any) -> Double? {
        switch value {
        case let v as Double where type(of: value) == Double.self: return v
        case let v as Float where type(of: value) == Float.self: return Double(v)
        case let v as Int where type(of: value) == Int.self: return Double(v)
        case let v as UInt64 where type(of: value) == UInt64.self: return Double(v)
        case let n as NSNumber where !isBoolean(n): return n.doubleValue
        default: return nil
        }
    }

    /// Whole numbers only (`3` and `3.0`, not `3.5` or `true`).
    static func integer(_ value: Any) -> Int? {
        if type(of: value) == Int.self { return value as? Int }
        guard let d = number(value), d.isFinite, d == d.rounded(), abs(d) < 9e15 else { return nil }
        return Int(d)
    }
}
