import XAICore
