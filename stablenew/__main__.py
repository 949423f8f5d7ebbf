from stablenew.cli import main

raise SystemExit(main())
