import ForkliftLogging
import ForkliftSystem

unblockAllSignals()

// Before anything can log: install the line format for this process and every child.
ForkliftLogging.bootstrap()
ForkliftCommand.main(TestFlag.rewrite(Array(CommandLine.arguments.dropFirst())))
