from hybrid.cli import main

if __name__ == "__main__":  # not when a stage's own process imports it (multiprocessing's spawn)
    raise SystemExit(main())
