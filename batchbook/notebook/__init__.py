"""The notebook face: the ``%%batch`` cell magic and ``%batch`` commands (``magic``), what a
cell reads and assigns (``cellcode``), a cell as a job's function (``cell``), and a job's
output streamed into the cell (``output``)."""
