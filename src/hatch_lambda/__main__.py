import sys

from hatch_lambda.cli.main import main

sys.exit(main())
