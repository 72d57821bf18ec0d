from speakerverify.cli import main

main()
