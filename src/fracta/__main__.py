from fracta.cli.main import entry

entry()
