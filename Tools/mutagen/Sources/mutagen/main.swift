// mutagen FILE...: every mutation site in the given Swift files, one JSON object per line.
//
// A site is a byte range of the file and the text that replaces it: a realistic one-token or one-term
// bug (an operator swapped, a bound moved by one, a rounding direction flipped, a constant nudged,
// abs/max/min dropped, a term dropped from a condition, two arguments swapped, a statement removed).
// Tools/mutate.py samples from these, applies one at a time, rebuilds and runs the tests the
// file-to-tests map names. The finder reads syntax only: some sites do not type-check (the harness
// reports those as invalid and does not count them), and it skips the places where a mutant is
// noise rather than a bug: string literals, enum raw values, attributes, assertions and printing.
import Foundation
import SwiftOperators
import SwiftParser
import SwiftSyntax

struct Site: Encodable {
    let file: String
    let line: Int
    let start: Int  // UTF-8 offsets into the file
    let end: Int
    let original: String
    let replacement: String
    let kind: String
}

final class SiteFinder: SyntaxVisitor {
    private(set) var sites: [Site] = []
    private let file: String
    private let converter: SourceLocationConverter
    private let source: [UInt8]

    init(file: String, tree: SourceFileSyntax) {
        self.file = file
        source = Array(tree.description.utf8)
        converter = SourceLocationConverter(fileName: file, tree: tree)
        super.init(viewMode: .sourceAccurate)
    }

    private func add(_ node: some SyntaxProtocol, _ replacement: String, _ kind: String) {
        let start = node.positionAfterSkippingLeadingTrivia
        let original = node.trimmedDescription
        guard replacement != original else { return }
        sites.append(Site(file: file, line: converter.location(for: start).line, start: start.utf8Offset,
                          end: node.endPositionBeforeTrailingTrivia.utf8Offset, original: original,
                          replacement: replacement, kind: kind))
    }

    // Places where a changed token is not a plausible bug of the code's logic.
    override func visit(_ node: StringLiteralExprSyntax) -> SyntaxVisitorContinueKind { .skipChildren }
    override func visit(_ node: AttributeSyntax) -> SyntaxVisitorContinueKind { .skipChildren }
    override func visit(_ node: EnumCaseDeclSyntax) -> SyntaxVisitorContinueKind { .skipChildren }
    override func visit(_ node: SwitchCaseLabelSyntax) -> SyntaxVisitorContinueKind { .skipChildren }
    override func visit(_ node: IfConfigClauseSyntax) -> SyntaxVisitorContinueKind {
        // `#if DEBUG` bodies and the like are not what the release tests run.
        node.condition == nil ? .visitChildren : .skipChildren
    }
    override func visit(_ node: GenericArgumentClauseSyntax) -> SyntaxVisitorContinueKind { .skipChildren }

    private static let ignoredCalls: Set<String> = [
        "precondition", "preconditionFailure", "assert", "assertionFailure", "fatalError", "print", "debugPrint", "fputs",
        "dump",
    ]

    private static func calledName(_ call: FunctionCallExprSyntax) -> String? {
        if let ref = call.calledExpression.as(DeclReferenceExprSyntax.self) { return ref.baseName.text }
        if let member = call.calledExpression.as(MemberAccessExprSyntax.self) {
            if let base = member.base?.as(DeclReferenceExprSyntax.self), base.baseName.text == "Swift" {
                return member.declName.baseName.text
            }
        }
        return nil
    }

    // MARK: operators

    private static let swapped: [String: String] = [
        "+": "-", "-": "+", "*": "/", "/": "*", "+=": "-=", "-=": "+=", "*=": "/=", "/=": "*=",
        "<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "==", "&&": "||", "||": "&&",
        "..<": "...", "...": "..<", "<<": ">>", ">>": "<<", "&": "|", "|": "&",
    ]

    override func visit(_ node: InfixOperatorExprSyntax) -> SyntaxVisitorContinueKind {
        guard let op = node.operator.as(BinaryOperatorExprSyntax.self) else { return .visitChildren }
        let text = op.operator.text
        let operands = [node.leftOperand, node.rightOperand]
        let stringy = operands.contains { $0.is(StringLiteralExprSyntax.self) || $0.is(ArrayExprSyntax.self) }
        if let to = Self.swapped[text], !(stringy && (text == "+" || text == "+=")) {
            add(op, to, "operator")
        }
        switch text {
        case "&&", "||":
            // A term dropped from a compound condition.
            add(node, node.leftOperand.trimmedDescription, "drop-term")
            add(node, node.rightOperand.trimmedDescription, "drop-term")
        case "..<", "...":
            // Loop and slice bounds off by one.
            add(node.rightOperand, "(\(node.rightOperand.trimmedDescription)) - 1", "bound")
            if !node.leftOperand.is(IntegerLiteralExprSyntax.self) {
                add(node.leftOperand, "(\(node.leftOperand.trimmedDescription)) + 1", "bound")
            }
        case "/":
            // Ceiling division written (a + b - 1) / b, rounded down instead.
            if let paren = node.leftOperand.as(TupleExprSyntax.self), paren.elements.count == 1,
               let inner = paren.elements.first?.expression.as(InfixOperatorExprSyntax.self),
               inner.operator.as(BinaryOperatorExprSyntax.self)?.operator.text == "-",
               inner.rightOperand.as(IntegerLiteralExprSyntax.self)?.literal.text == "1" {
                add(inner, inner.leftOperand.trimmedDescription + " - 0", "rounding")
            }
        default: break
        }
        return .visitChildren
    }

    override func visit(_ node: PrefixOperatorExprSyntax) -> SyntaxVisitorContinueKind {
        if node.operator.text == "-" || node.operator.text == "!" {
            add(node, node.expression.trimmedDescription, node.operator.text == "-" ? "sign" : "negation")
        }
        return .visitChildren
    }

    // MARK: literals

    override func visit(_ node: IntegerLiteralExprSyntax) -> SyntaxVisitorContinueKind {
        let text = node.literal.text.replacingOccurrences(of: "_", with: "")
        if let value = Int(text) {
            add(node, String(value == 1 ? 0 : value + 1), "constant")
        }
        return .skipChildren
    }

    override func visit(_ node: FloatLiteralExprSyntax) -> SyntaxVisitorContinueKind {
        let text = node.literal.text.replacingOccurrences(of: "_", with: "")
        if let value = Double(text) {
            let nudged = value == 0 ? 0.1 : value * 1.5
            add(node, "\(nudged)", "constant")
        }
        return .skipChildren
    }

    // MARK: calls

    override func visit(_ node: FunctionCallExprSyntax) -> SyntaxVisitorContinueKind {
        let name = Self.calledName(node)
        if let name, Self.ignoredCalls.contains(name) { return .skipChildren }
        let arguments = Array(node.arguments)
        switch name {
        case "abs", "sqrt", "exp", "log":
            if arguments.count == 1 { add(node, arguments[0].expression.trimmedDescription, "drop-call") }
        case "max", "min":
            for argument in arguments where arguments.count == 2 {
                add(node, argument.expression.trimmedDescription, "drop-call")
            }
            if arguments.count == 2 {
                add(node.calledExpression, name == "max" ? "min" : "max", "operator")
            }
        case "ceil", "floor":
            add(node.calledExpression, name == "ceil" ? "floor" : "ceil", "rounding")
        default:
            break
        }
        if let member = node.calledExpression.as(MemberAccessExprSyntax.self), let base = member.base {
            switch member.declName.baseName.text {
            case "squareRoot" where arguments.isEmpty:
                add(node, base.trimmedDescription, "drop-call")
            case "rounded":
                let rule = arguments.first?.expression.trimmedDescription
                let flipped = [".up": ".down", ".down": ".up", ".towardZero": ".awayFromZero", ".awayFromZero": ".towardZero"]
                if let rule, let to = flipped[rule] {
                    add(arguments[0].expression, to, "rounding")
                } else if rule == nil {
                    add(node, base.trimmedDescription + ".rounded(.down)", "rounding")
                }
            default: break
            }
        }
        // Two neighbouring unlabeled arguments swapped (not for commutative min/max).
        if name != "max", name != "min", arguments.count >= 2 {
            for i in 0..<(arguments.count - 1) where arguments[i].label == nil && arguments[i + 1].label == nil {
                let a = arguments[i].expression.trimmedDescription, b = arguments[i + 1].expression.trimmedDescription
                guard a != b else { continue }
                let first = arguments[i].expression, second = arguments[i + 1].expression
                let start = first.positionAfterSkippingLeadingTrivia
                let end = second.endPositionBeforeTrailingTrivia
                let span = String(decoding: source[start.utf8Offset..<end.utf8Offset], as: UTF8.self)
                let between = String(span.dropFirst(a.utf8.count).dropLast(b.utf8.count))
                sites.append(Site(file: file, line: converter.location(for: start).line, start: start.utf8Offset,
                                  end: end.utf8Offset, original: span, replacement: b + between + a, kind: "swap-arguments"))
            }
        }
        return .visitChildren
    }

    override func visit(_ node: MemberAccessExprSyntax) -> SyntaxVisitorContinueKind {
        if node.declName.baseName.text == "magnitude", let base = node.base {
            add(node, base.trimmedDescription, "drop-call")
        }
        return .visitChildren
    }

    // MARK: conditions and statements

    override func visit(_ node: ConditionElementListSyntax) -> SyntaxVisitorContinueKind {
        // A term dropped from a compound `if` / `guard` / `while`: the boolean clause made true.
        if node.count > 1 {
            for element in node {
                if case .expression(let expression) = element.condition {
                    add(expression, "true", "drop-term")
                }
            }
        }
        return .visitChildren
    }

    /// Whether a body's only statement may be its value: a closure's, a getter's or a function's that returns one.
    private func isValueOfItsBody(_ node: CodeBlockItemSyntax) -> Bool {
        guard let body = node.parent?.parent else { return false }
        if body.is(ClosureExprSyntax.self) || body.is(AccessorBlockSyntax.self) { return true }
        guard let block = body.as(CodeBlockSyntax.self), let owner = block.parent else { return false }
        if owner.is(AccessorDeclSyntax.self) { return true }
        if let function = owner.as(FunctionDeclSyntax.self) { return function.signature.returnClause != nil }
        return false
    }

    private func isAssignmentLike(_ expression: ExprSyntax) -> Bool {
        guard let infix = expression.as(InfixOperatorExprSyntax.self) else { return false }
        return infix.operator.is(AssignmentExprSyntax.self) || infix.operator.is(BinaryOperatorExprSyntax.self)
    }

    override func visit(_ node: CodeBlockItemSyntax) -> SyntaxVisitorContinueKind {
        guard case .expr(let expression) = node.item else { return .visitChildren }
        var inner = ExprSyntax(expression)
        if let t = inner.as(TryExprSyntax.self) { inner = t.expression }
        if let a = inner.as(AwaitExprSyntax.self) { inner = a.expression }
        let removable: Bool
        if let call = inner.as(FunctionCallExprSyntax.self) {
            removable = !(Self.calledName(call).map(Self.ignoredCalls.contains) ?? false)
        } else if let infix = inner.as(InfixOperatorExprSyntax.self) {
            let isAssignment = infix.operator.is(AssignmentExprSyntax.self)
            let compound = infix.operator.as(BinaryOperatorExprSyntax.self).map { ["+=", "-=", "*=", "/=", "|=", "&="].contains($0.operator.text) } ?? false
            removable = isAssignment || compound
        } else {
            removable = false
        }
        // The sole expression of a body is its value (removing it does not compile); a released
        // resource is a leak, which LeakSanitizer (`make fuzz`) looks for and a result cannot show.
        let sole = node.parent?.as(CodeBlockItemListSyntax.self)?.count == 1 && isValueOfItsBody(node)
        let releases = inner.as(FunctionCallExprSyntax.self).flatMap(Self.calledName).map { name in
            ["destroy", "release", "free", "deallocate", "close"].contains { name.lowercased().contains($0) }
        } ?? false
        if removable && !releases && !(sole && !isAssignmentLike(inner)) {
            add(node, "_ = 0", "remove-statement")
        }
        return .visitChildren
    }
}

let files = Array(CommandLine.arguments.dropFirst())
if files.isEmpty {
    FileHandle.standardError.write("usage: mutagen FILE.swift...\n".data(using: .utf8)!)
    exit(2)
}
let encoder = JSONEncoder()
encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
for file in files {
    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
        FileHandle.standardError.write("mutagen: cannot read \(file)\n".data(using: .utf8)!)
        exit(1)
    }
    let parsed = Parser.parse(source: text)
    let folded = OperatorTable.standardOperators.foldAll(parsed) { _ in }
    guard let tree = folded.as(SourceFileSyntax.self) else { continue }
    let finder = SiteFinder(file: file, tree: tree)
    finder.walk(tree)
    for site in finder.sites {
        if let line = try? encoder.encode(site) { print(String(decoding: line, as: UTF8.self)) }
    }
}
