# The Slurm launcher (coordinator/launcher/slurm_launcher.h).
#
# coordinator_slurm_test: no cluster needed. squeue/sbatch output captured from Debian's slurm-wlm,
# the job-state-to-retry-class table, the rendered batch script, and the launcher's polling against
# stand-in sbatch/squeue/scancel scripts. Fast; runs in every build.
#
# coordinator_slurm_e2e_test (label slurm): isoflopd with the slurm launcher on a real one-node
# cluster on localhost, started by cluster/slurm_localhost.sh (root; installs slurm-wlm and munge
# when missing). Each test skips, saying why, when no cluster answers:
#   sudo cluster/slurm_localhost.sh start && ctest --test-dir BUILD -L slurm
isoflop_test(coordinator_slurm_test
  SOURCES coordinator_slurm_test.cpp
  LIBS isoflop_coordinator)

coordinator_e2e_test(coordinator_slurm_e2e_test slurm coordinator_slurm_e2e_test.cpp)
